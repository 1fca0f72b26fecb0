"""``p0-receiver audit``: query, show, timeline, stats and export the audit log (read only)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from p0_receiver.auditlog.integrity import IntegrityReport, check_integrity
from p0_receiver.auditlog.stats import STATS_FIELDS, AuditStats, count_records
from p0_receiver.auditlog.views import query_records, timeline, window
from p0_receiver.cli.operator import operator_context, operator_errors
from p0_receiver.cli.options import MOMENT, filter_options, record_filter
from p0_receiver.cli.output import (
    EXPORT_COLUMNS,
    LIST_COLUMNS,
    TIMELINE_COLUMNS,
    cell,
    counting_progress,
    format_option,
    json_panel_text,
    json_safe,
    json_text,
    output_stream,
    plain,
    record_writer,
    row_writer,
    stdout,
    tell,
    wide_console,
)
from p0_receiver.record import RecordField


@click.group()
def audit() -> None:
    """Query and explain the audit log: who had access, who approved it, and why."""


@audit.command("query")
@filter_options(default_limit=100)
@format_option()
@operator_errors
def query(output_format: str, **options: Any) -> None:
    """List records matching the filters, newest first (streamed page by page).

    Filters combine (AND). Times are ISO-8601 or relative ages: --since 7d.
    """
    wanted = record_filter(options)
    context = operator_context()
    with record_writer(output_format, stdout(), LIST_COLUMNS) as writer:
        for record in query_records(context.reader(), wanted):
            writer.write(record)
    if writer.count == 0 and output_format == "table":
        tell(f"no records match ({wanted.describe()})")


audit.add_command(query, "list")


def _integrity_line(report: IntegrityReport) -> str:
    if report.ok:
        return (
            "integrity: ok (the body hashes to bodySha256 and to the eventId, and every field "
            "derived from it matches)"
        )
    return "integrity: WARNING " + "; ".join(report.problems)


def _show_document(record: Mapping[str, Any], report: IntegrityReport) -> dict[str, Any]:
    # Any stored document, however it was edited: a missing token or body is shown as such.
    token = record.get(RecordField.TOKEN) or {}
    hidden = (RecordField.BODY, RecordField.TOKEN)
    shown = json_safe(dict(sorted((k, v) for k, v in record.items() if k not in hidden)))
    try:
        body: Any = json.loads(bytes(record.get(RecordField.BODY) or b""))
    except ValueError:
        body = json_safe(record.get(RecordField.BODY))
    return {
        "record": shown,
        "token": json_safe({"header": token.get("header"), "claims": token.get("claims")}),
        "body": body,
        "integrity": {
            "ok": report.ok,
            "bodyMatchesSha256": report.body_matches_digest,
            "bodyMatchesEventId": report.body_matches_event_id,
            "fieldsMatchBody": report.fields_match_body,
            "mismatchedFields": list(report.mismatched_fields),
            "problems": list(report.problems),
        },
    }


@audit.command()
@click.argument("event_id")
@click.option("--raw", is_flag=True, help="Print exactly the bytes P0 sent, nothing else.")
@format_option(choices=("table", "json"))
@operator_errors
def show(event_id: str, raw: bool, output_format: str) -> None:
    """Show one record: its fields, the token's claims, the verbatim body, an integrity check.

    Exits 1 if the stored body no longer matches its digest or event id, or a field derived
    from the body (approver, reason, principal, ...) no longer matches the body.
    """
    record = operator_context().reader().get(event_id)
    if record is None:
        raise click.ClickException(f"no audit record with event id {event_id}")
    if raw:
        stream = sys.stdout.buffer
        stream.write(bytes(record.get(RecordField.BODY) or b""))
        stream.flush()
        return
    report = check_integrity(record)
    document = _show_document(record, report)
    if output_format == "json":
        click.echo(json_text(document, indent=2))
    else:
        console = wide_console(stdout())
        fields = Table(box=None, show_header=False, pad_edge=False)
        fields.add_column(style="bold")
        fields.add_column(overflow="fold")
        for name, value in document["record"].items():
            fields.add_row(plain(name), plain(cell(value)))
        # A title given as a string is parsed as markup: build the Text.
        console.print(Panel(fields, title=plain(f"audit record {event_id}")))
        console.print(
            Panel(json_panel_text(document["token"]), title=Text("token (header, claims)"))
        )
        console.print(Panel(json_panel_text(document["body"]), title=Text("body as P0 sent it")))
        console.print(plain(_integrity_line(report)), style=None if report.ok else "bold red")
    if not report.ok:
        if output_format == "json":
            tell(_integrity_line(report))
        raise SystemExit(1)


@audit.command("timeline")
@click.argument("object_id")
@format_option()
@operator_errors
def timeline_command(object_id: str, output_format: str) -> None:
    """Every event about one P0 request or pre-approval (data.id), in P0's time order."""
    context = operator_context()
    with record_writer(output_format, stdout(), TIMELINE_COLUMNS) as writer:
        for record in timeline(context.reader(), object_id):
            writer.write(record)
    if writer.count == 0:
        tell(f"no records about {object_id}")


def _stats_rows(stats: AuditStats) -> Iterator[dict[str, Any]]:
    for dimension, counts in stats.dimensions().items():
        for key, count in counts.items():
            yield {"dimension": dimension, "key": key, "count": count}


@audit.command()
@click.option(
    "--since", type=MOMENT, default="7d", show_default=True, help="Window start (inclusive)."
)
@click.option("--until", type=MOMENT, help="Window end (exclusive; default now).")
@format_option()
@operator_errors
def stats(since: datetime, until: datetime | None, output_format: str) -> None:
    """Counts by event type, day (UTC) and publish status over a window of receivedAt."""
    if until is not None and since >= until:
        raise click.BadParameter("must be later than --since", param_hint="'--until'")
    context = operator_context()
    result = count_records(window(context.reader(), since=since, until=until, fields=STATS_FIELDS))
    span = {"since": json_safe(since), "until": json_safe(until)}
    out = stdout()
    if output_format == "json":
        click.echo(json_text({**span, "total": result.total, **result.dimensions()}, indent=2))
    elif output_format in ("jsonl", "csv"):
        with row_writer(output_format, out, ("dimension", "key", "count")) as writer:
            for row in _stats_rows(result):
                writer.write(row)
    else:
        wide_console(out).print(
            f"{result.total} records received {span['since']} .. {span['until'] or 'now'}"
        )
        for dimension, counts in result.dimensions().items():
            with row_writer("table", out, (dimension, "count")) as writer:
                for key, count in counts.items():
                    writer.write({dimension: key, "count": count})


@audit.command()
@filter_options(default_limit=None)
@format_option(default="jsonl", choices=("jsonl", "csv", "json"))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this new file (mode 0600) instead of stdout.",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing --output file (never through a symlink)."
)
@operator_errors
def export(output_format: str, output: Path | None, force: bool, **options: Any) -> None:
    """Export matching records (whole records; body as text) as JSON lines, CSV or JSON.

    Streams page by page with a progress display on stderr: memory does not grow with the
    number of records. An --output file is created readable by its owner only.
    """
    wanted = record_filter(options)
    context = operator_context()
    with (
        output_stream(output, replace=force) as stream,
        counting_progress() as progress,
        record_writer(output_format, stream, EXPORT_COLUMNS) as writer,
    ):
        task = progress.add_task("exporting", total=None)
        for record in query_records(context.reader(), wanted):
            writer.write(record)
            progress.advance(task)
    tell(
        f"exported {writer.count} records ({wanted.describe()})"
        + (f" to {output}" if output else "")
    )
