"""``p0-receiver redrive`` and ``replay``: the repair use case (``usecases.repair``) in a shell.

A record is marked ``published`` only after Pub/Sub returned a message id, a replay never
changes the record's publish state, and neither publishes a record that fails the integrity
check.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import timedelta
from itertools import islice
from typing import Any

import click
from rich.progress import Progress, TaskID

from p0_receiver.core.record import AuditRecord, RecordField, rfc3339
from p0_receiver.entrypoints.cli.operator import operator_context, operator_errors
from p0_receiver.entrypoints.cli.options import DURATION, filter_options, record_filter
from p0_receiver.entrypoints.cli.output import (
    LIST_COLUMNS,
    counting_progress,
    format_option,
    record_writer,
    tell,
)
from p0_receiver.usecases import repair
from p0_receiver.usecases.audit.views import pending_records, query_records

# A replay larger than this needs --yes: re-sending history is loud for every subscriber.
REPLAY_CONFIRM_THRESHOLD = 10
_ATTEMPTS = frozenset(
    {repair.StepOutcome.PUBLISHED, repair.StepOutcome.UNRECORDED, repair.StepOutcome.FAILED}
)


def _summary(tally: repair.RepairTally, verb: str) -> str:
    parts = [f"{tally.published} {verb}"]
    if tally.failed_integrity:
        parts.append(f"{tally.failed_integrity} failed the integrity check (skipped)")
    if tally.skipped:
        parts.append(f"{tally.skipped} already published meanwhile (skipped)")
    if tally.unrecorded:
        parts.append(f"{tally.unrecorded} published but not marked (a rerun re-sends them)")
    parts.append(f"{tally.failed} failed")
    return ", ".join(parts)


def _tell_step(step: repair.RepairStep) -> None:
    if step.outcome is repair.StepOutcome.REFUSED:
        tell(f"skipped {step.event_id}: {'; '.join(step.problems)}")
    elif step.failure is not None:
        failure = step.failure
        tell(f"failed {step.event_id}: {failure.reason} ({failure.detail or 'unknown'})")


def _progress_of(progress: Progress, task: TaskID) -> repair.StepListener:
    def on_step(step: repair.RepairStep) -> None:
        _tell_step(step)
        if step.outcome in _ATTEMPTS:
            progress.advance(task)

    return on_step


def _finish(tally: repair.RepairTally, summary: str) -> None:
    if tally.stopped:
        tell(
            f"stopping after {repair.MAX_CONSECUTIVE_FAILURES} failures in a row: Pub/Sub still "
            "unavailable; the remaining records stay 'received' for the next run"
        )
    tell(summary)
    if not tally.clean:
        raise SystemExit(1)


def _dry_run(records: Iterable[AuditRecord], output_format: str) -> tuple[int, int]:
    """List what would be published, report what the integrity check refuses; count both."""
    tally = repair.RepairTally()

    def on_step(step: repair.RepairStep) -> None:
        tally.count(step)
        _tell_step(step)

    with record_writer(output_format, sys.stdout, LIST_COLUMNS) as writer:
        for record in repair.intact_records(records, on_step):
            writer.write(record)
    return writer.count, tally.failed_integrity


@click.command()
@click.option(
    "--min-age",
    type=DURATION,
    default="5m",
    show_default=True,
    help="Only records received at least this long ago (never race an in-flight delivery).",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most N records this run.")
@click.option("--dry-run", is_flag=True, help="List what would be published; publish nothing.")
@format_option()
@operator_errors
def redrive(min_age: timedelta, limit: int | None, dry_run: bool, output_format: str) -> None:
    """Publish every record still 'received' (e.g. after a Pub/Sub outage) and mark it.

    Safe to run twice or concurrently: each record is re-read just before publishing, marked
    published only after a successful publish, and any duplicate on the topic carries the same
    eventId attribute for subscribers to dedupe.
    """
    context = operator_context()
    cutoff = context.now() - min_age
    reader = context.reader()
    if dry_run:
        pending = pending_records(reader, received_before=cutoff, limit=limit)
        listed, refused = _dry_run(pending, output_format)
        tell(
            f"dry run: {listed} records received before {rfc3339(cutoff)} "
            "are waiting to be published"
            + (f", {refused} failed the integrity check" if refused else "")
        )
        if refused:
            raise SystemExit(1)
        return
    audit_log, publisher = context.audit_log(), context.publisher()
    with counting_progress() as progress:
        task = progress.add_task("redriving", total=None)
        tally = repair.redrive(
            reader,
            audit_log,
            publisher,
            received_before=cutoff,
            limit=limit,
            clock=context.now,
            on_step=_progress_of(progress, task),
        )
    _finish(tally, f"redrive: {_summary(tally, 'published')} (received before {rfc3339(cutoff)})")


@click.command()
@filter_options(default_limit=None)
@click.option("--dry-run", is_flag=True, help="List what would be replayed; publish nothing.")
@click.option(
    "--yes", is_flag=True, help=f"Confirm a replay of more than {REPLAY_CONFIRM_THRESHOLD} records."
)
@format_option()
@operator_errors
def replay(dry_run: bool, yes: bool, output_format: str, **options: Any) -> None:
    """Re-publish matching records (published ones too) with the attribute replay=true.

    The original eventId attribute is kept so subscribers can dedupe; the records' publish
    state is not changed.
    """
    wanted = record_filter(options)
    context = operator_context()
    reader = context.reader()
    if dry_run:
        listed, refused = _dry_run(query_records(reader, wanted), output_format)
        tell(
            f"dry run: {listed} records would be replayed ({wanted.describe()})"
            + (f", {refused} failed the integrity check" if refused else "")
        )
        if refused:
            raise SystemExit(1)
        return
    if not yes:
        probe = query_records(reader, wanted, fields=(RecordField.EVENT_ID,))
        if len(list(islice(probe, REPLAY_CONFIRM_THRESHOLD + 1))) > REPLAY_CONFIRM_THRESHOLD:
            raise click.UsageError(
                f"more than {REPLAY_CONFIRM_THRESHOLD} records match ({wanted.describe()}); "
                "pass --yes to replay them all, or --dry-run to list them"
            )
    audit_log, publisher = context.audit_log(), context.publisher()
    with counting_progress() as progress:
        task = progress.add_task("replaying", total=None)
        tally = repair.replay(
            reader,
            audit_log,
            publisher,
            wanted,
            clock=context.now,
            on_step=_progress_of(progress, task),
        )
    _finish(tally, f"replay: {_summary(tally, 'replayed')} ({wanted.describe()})")
