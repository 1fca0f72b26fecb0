"""``p0-receiver redrive`` and ``replay``: repair delivery to Pub/Sub from the audit log.

Both publish through ``p0_receiver.service.publish_record``, the receiver's own path: a record
is marked ``published`` only after Pub/Sub returned a message id, and a replay never changes
the record's publish state. Neither publishes a record that fails the integrity check: what
goes to subscribers is what P0 sent, or nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from typing import Any

import click

from p0_receiver.auditlog.integrity import check_integrity
from p0_receiver.auditlog.views import pending_records, query_records
from p0_receiver.cli.operator import OperatorContext, operator_context, operator_errors
from p0_receiver.cli.options import DURATION, filter_options, record_filter
from p0_receiver.cli.output import (
    LIST_COLUMNS,
    counting_progress,
    format_option,
    record_writer,
    tell,
)
from p0_receiver.errors import DownstreamUnavailableError
from p0_receiver.ports import AuditLog, EventPublisher
from p0_receiver.record import PublishStatus, RecordField, rfc3339
from p0_receiver.service import publish_record

# A replay larger than this needs --yes: re-sending history is loud for every subscriber.
REPLAY_CONFIRM_THRESHOLD = 10
# Stop after this many publish failures in a row: the topic is still down, and each failure
# costs a full publish timeout.
MAX_CONSECUTIVE_FAILURES = 3


@dataclass
class Tally:
    published: int = 0
    skipped: int = 0  # already published by someone else meanwhile
    failed: int = 0
    unrecorded: int = 0  # published, but marking the record failed (a rerun re-sends it)
    failed_integrity: int = 0  # failed the integrity check: never published
    consecutive_failures: int = 0

    def summary(self, verb: str) -> str:
        parts = [f"{self.published} {verb}"]
        if self.failed_integrity:
            parts.append(f"{self.failed_integrity} failed the integrity check (skipped)")
        if self.skipped:
            parts.append(f"{self.skipped} already published meanwhile (skipped)")
        if self.unrecorded:
            parts.append(f"{self.unrecorded} published but not marked (a rerun re-sends them)")
        parts.append(f"{self.failed} failed")
        return ", ".join(parts)


def _intact(record: dict[str, Any], tally: Tally) -> bool:
    """Whether ``record`` may be published; reports (and counts) one that may not."""
    report = check_integrity(record)
    if not report.ok:
        tally.failed_integrity += 1
        tell(f"skipped {record.get(RecordField.EVENT_ID)}: {'; '.join(report.problems)}")
    return report.ok


def _dry_run(records: Iterable[dict[str, Any]], output_format: str) -> tuple[int, int]:
    """List what would be published, report what the integrity check refuses; count both."""
    tally = Tally()
    with record_writer(output_format, sys.stdout, LIST_COLUMNS) as writer:
        for record in records:
            if _intact(record, tally):
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
    pending = pending_records(reader, received_before=cutoff, limit=limit)
    if dry_run:
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
    tally = Tally()
    with counting_progress() as progress:
        task = progress.add_task("redriving", total=None)
        for candidate in pending:
            # Re-read: a concurrent redrive or P0's retry may have published it since the page
            # was fetched. (Not a lock: a race still yields a duplicate with the same eventId.)
            current = reader.get(candidate[RecordField.EVENT_ID])
            if current is None or current.get(RecordField.PUBLISH_STATUS) != PublishStatus.RECEIVED:
                tally.skipped += 1
                continue
            if not _intact(current, tally):
                continue
            if not _publish(context, audit_log, publisher, current, tally, replay=False):
                break
            progress.advance(task)
    tell(f"redrive: {tally.summary('published')} (received before {rfc3339(cutoff)})")
    if tally.failed or tally.unrecorded or tally.failed_integrity:
        raise SystemExit(1)


def _publish(
    context: OperatorContext,
    audit_log: AuditLog,
    publisher: EventPublisher,
    record: dict[str, Any],
    tally: Tally,
    *,
    replay: bool,
) -> bool:
    """Publish one record; False when it is time to stop (the topic keeps failing)."""
    event_id = record[RecordField.EVENT_ID]
    try:
        _, recorded = publish_record(audit_log, publisher, record, now=context.now(), replay=replay)
    except DownstreamUnavailableError as failure:
        tally.failed += 1
        tally.consecutive_failures += 1
        tell(f"failed {event_id}: {failure.reason} ({failure.detail or 'unknown'})")
        if tally.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            tell(
                f"stopping after {MAX_CONSECUTIVE_FAILURES} failures in a row: Pub/Sub still "
                "unavailable; the remaining records stay 'received' for the next run"
            )
            return False
        return True
    tally.consecutive_failures = 0
    if recorded:
        tally.published += 1
    else:
        tally.unrecorded += 1
    return True


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
    tally = Tally()
    with counting_progress() as progress:
        task = progress.add_task("replaying", total=None)
        for record in query_records(reader, wanted):
            if not _intact(record, tally):
                continue
            if not _publish(context, audit_log, publisher, record, tally, replay=True):
                break
            progress.advance(task)
    tell(f"replay: {tally.summary('replayed')} ({wanted.describe()})")
    if tally.failed or tally.failed_integrity:
        raise SystemExit(1)
