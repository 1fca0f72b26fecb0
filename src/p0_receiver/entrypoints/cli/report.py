"""``p0-receiver report access-review``: the period's lifecycles, findings, figures and
integrity, for an auditor (HTML), a GRC tool (JSON) or a spreadsheet (CSV)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import click

from p0_receiver import __version__
from p0_receiver.core.findings import RULES
from p0_receiver.core.record import rfc3339
from p0_receiver.entrypoints.cli.audit import _archive_location
from p0_receiver.entrypoints.cli.operator import operator_context, operator_errors
from p0_receiver.entrypoints.cli.options import MOMENT
from p0_receiver.entrypoints.cli.output import (
    counting_progress,
    json_text,
    output_stream,
    row_writer,
    tell,
)
from p0_receiver.entrypoints.cli.report_html import charts, render_html
from p0_receiver.ports import ArchiveLocation
from p0_receiver.usecases.audit.review import (
    REVIEW_SCHEMA,
    ROW_COLUMNS,
    IntegrityTally,
    ReviewedLifecycle,
    ReviewSummary,
    lifecycle_row,
    review_lifecycles,
)
from p0_receiver.usecases.audit.verify import VerifyReport, verify_archive

_DATE_ONLY = 10  # len("2026-11-30")


def _period_end(_ctx: click.Context, _param: click.Parameter, value: str) -> datetime:
    """``--to`` as a date includes that whole day (the report's end is exclusive)."""
    moment = MOMENT.convert(value, _param, _ctx)
    return moment + timedelta(days=1) if len(value.strip()) == _DATE_ONLY else moment


@click.group()
def report() -> None:
    """Reports over the audit log, for auditors."""


def _figures(summary: dict[str, Any]) -> list[dict[str, Any]]:
    def duration(seconds: float | None) -> str:
        if seconds is None:
            return "n/a"
        if seconds < 120:
            return f"{seconds:.0f} s"
        if seconds < 7200:
            return f"{seconds / 60:.1f} min"
        return f"{seconds / 3600:.1f} h"

    shown = (
        ("requests", "requests", str),
        ("grants", "grants", str),
        ("denials", "denials", str),
        ("preapprovals", "pre-approvals", str),
        ("distinctRequesters", "distinct requesters", str),
        ("distinctApprovers", "distinct approvers", str),
        ("medianTimeToApproveSeconds", "median time to approve", duration),
        ("p95TimeToApproveSeconds", "95th percentile time to approve", duration),
        ("medianGrantSeconds", "median grant", duration),
        ("longestGrantSeconds", "longest grant", duration),
    )
    return [{"key": key, "label": label, "value": show(summary[key])} for key, label, show in shown]


def _integrity(
    tally: IntegrityTally, verified: VerifyReport | None, location: ArchiveLocation | None
) -> dict[str, Any]:
    ok = tally.failed == 0 and (verified is None or verified.ok)
    statement = (
        f"{tally.checked} records of the period checked with audit show's integrity check "
        f"(body hash, event id, every derived field): {tally.failed} failed."
    )
    if verified is None:
        statement += " Archive agreement not checked (no --archive given)."
    else:
        counts = verified.counts()
        statement += (
            f" audit verify against {location}: {counts['archivedMessages']} archived messages, "
            f"{counts['publishedRecords']} published records, "
            f"{len(verified.findings)} mismatches" + (" (ok)." if verified.ok else ".")
        )
    failures = [{"eventId": event_id, "problem": problem} for event_id, problem in tally.failures]
    if verified is not None:
        failures += [
            {"eventId": finding.event_id, "problem": f"{finding.kind}: {finding.detail}"}
            for finding in verified.findings[: tally.max_listed]
        ]
    return {
        "ok": ok,
        "statement": statement,
        "recordsChecked": tally.checked,
        "recordsFailed": tally.failed,
        "archive": None if verified is None else {"location": str(location), **verified.counts()},
        "failures": failures,
    }


class _Spool:
    """Rows and findings on disk while the period streams: memory holds one row at a time."""

    def __init__(self) -> None:
        self.rows: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.findings: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *_: object) -> None:
        self.rows.close()
        self.findings.close()

    def add(self, reviewed: ReviewedLifecycle) -> None:
        index = self.count
        self.count += 1
        self.rows.write(json.dumps(lifecycle_row(reviewed)) + "\n")
        life = reviewed.lifecycle
        for finding in reviewed.findings:
            item = {
                "rule": finding.rule,
                "row": index,
                "objectId": life.object_id,
                "principal": life.principal or life.requester,
                "approver": life.approver,
                "permission": life.permission,
                "detail": finding.detail,
            }
            self.findings.write(json.dumps(item) + "\n")

    def read_rows(self) -> Iterator[dict[str, Any]]:
        self.rows.seek(0)
        for index, line in enumerate(self.rows):
            yield {"index": index, "cells": json.loads(line)}

    def read_findings(self, rule: str) -> Iterator[dict[str, Any]]:
        self.findings.seek(0)
        for line in self.findings:
            item = json.loads(line)
            if item["rule"] == rule:
                yield item


def _thresholds(environ_settings: Any) -> str:
    s = environ_settings
    return (
        f"long grant > {s.review_long_grant_hours} h; rubber stamp < "
        f"{s.review_fast_approval_seconds} s; business hours {s.review_business_hours} "
        f"{s.review_timezone}; never-ended grace {s.review_never_ended_grace_hours} h; "
        f"automatic sources {s.review_automatic_sources}"
    )


@report.command("access-review")
@click.option("--from", "start", type=MOMENT, required=True, help="Period start (inclusive).")
@click.option(
    "--to",
    "end",
    required=True,
    callback=_period_end,
    help="Period end: a date includes that whole day; a time is exclusive.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this new file (mode 0600) instead of stdout.",
)
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(("html", "json", "csv")),
    default="html",
    show_default=True,
)
@click.option("--notifier", help="Only this P0 notifier's events (the envelope id).")
@click.option(
    "--archive",
    "location",
    callback=lambda ctx, param, value: (
        None if value is None else _archive_location(ctx, param, value)
    ),
    metavar="gs://BUCKET[/PREFIX]",
    help="Also run audit verify against the write-once archive for the integrity statement.",
)
@operator_errors
def access_review(
    start: datetime,
    end: datetime,
    out: Path | None,
    force: bool,
    output_format: str,
    notifier: str | None,
    location: ArchiveLocation | None,
) -> None:
    """Who had access to what, when and for how long, who approved it, why, and what looks
    improper: one row per request or pre-approval with an event in the period (P0's time),
    its findings, summary figures, charts, and the integrity of the records read.

    HTML is one self-contained file (no script, font or external URL; prints to PDF); JSON
    has the same content as data (schema p0-receiver/access-review/1); CSV has the rows.
    """
    if start >= end:
        raise click.BadParameter("must be later than --from", param_hint="'--to'")
    context = operator_context()
    settings = context.settings
    now = context.now()
    reader = context.reader()
    tally = IntegrityTally()
    summary = ReviewSummary()
    verified: VerifyReport | None = None
    with (
        _Spool() as spool,
        output_stream(out, replace=force) as stream,
        counting_progress("records") as progress,
    ):
        task = progress.add_task("reading the period", total=None)

        def checked(record: Any) -> None:
            tally.add(record)
            progress.advance(task)

        lifecycles = review_lifecycles(
            reader,
            start=start,
            end=end,
            now=now,
            policy=settings.review_policy(),
            notifier=notifier,
            on_record=checked,
        )
        if output_format == "csv":
            with row_writer("csv", stream, ROW_COLUMNS) as writer:
                for reviewed in lifecycles:
                    summary.add(reviewed)
                    writer.write(lifecycle_row(reviewed))
        else:
            for reviewed in lifecycles:
                summary.add(reviewed)
                spool.add(reviewed)
            if location is not None:
                verified = verify_archive(
                    context.archive(), reader, location, since=start, until=end, now=now
                )
            document = {
                "schema": REVIEW_SCHEMA,
                "period": {"from": rfc3339(start), "to": rfc3339(end)},
                "project": settings.project,
                "database": settings.firestore_database,
                "collection": settings.firestore_collection,
                "notifier": notifier,
                "generatedAt": rfc3339(now),
                "generator": f"p0-receiver {__version__}",
                "thresholds": _thresholds(settings),
                "integrity": _integrity(tally, verified, location),
                "summary": summary.figures(),
            }
            write = _write_json if output_format == "json" else _write_html
            write(stream, document, summary, spool)
    tell(
        f"access review {rfc3339(start)} .. {rfc3339(end)}: {summary.lifecycles} rows, "
        f"{sum(summary.findings_by_rule.values())} findings, {tally.checked} records "
        f"checked ({tally.failed} failed)" + (f"; written to {out}" if out else "")
    )
    if tally.failed or (verified is not None and not verified.ok):
        raise SystemExit(1)


def _finding_groups(spool: _Spool, summary: ReviewSummary) -> Iterator[dict[str, Any]]:
    for rule in RULES:
        yield {
            "rule": rule.id,
            "severity": str(rule.severity),
            "rationale": rule.rationale,
            "count": summary.findings_by_rule.get(rule.id, 0),
            "entries": spool.read_findings(rule.id),
        }


def _write_json(
    stream: IO[str], document: dict[str, Any], summary: ReviewSummary, spool: _Spool
) -> None:
    head = json_text({**document, "series": summary.series()}, indent=2)
    stream.write(head[: head.rindex("}")].rstrip() + ',\n  "findings": {')
    for number, group in enumerate(_finding_groups(spool, summary)):
        items = [{k: v for k, v in item.items() if k != "rule"} for item in group["entries"]]
        prefix = "" if number == 0 else ","
        stream.write(f'{prefix}\n    "{group["rule"]}": ' + json_text(items))
    stream.write('\n  },\n  "rows": [')
    for number, row in enumerate(spool.read_rows()):
        stream.write(("\n    " if number == 0 else ",\n    ") + json_text(row["cells"]))
    stream.write("\n  ]\n}\n")


def _write_html(
    stream: IO[str], document: dict[str, Any], summary: ReviewSummary, spool: _Spool
) -> None:
    context = {
        "period": document["period"],
        "project": document["project"],
        "collection": document["collection"],
        "notifier": document["notifier"],
        "generated": document["generatedAt"],
        "version": __version__,
        "thresholds": document["thresholds"],
        "integrity": document["integrity"],
        "figures": _figures(document["summary"]),
        "charts": charts(summary.series()),
        "findings": list(_finding_groups(spool, summary)),
        "columns": ROW_COLUMNS,
    }
    for piece in render_html(context, spool.read_rows()):
        stream.write(piece)
