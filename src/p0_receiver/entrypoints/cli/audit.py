"""``p0-receiver audit``: query, show, timeline, stats, export and verify the audit log (read
only)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from p0_receiver.core.integrity import IntegrityReport, check_integrity
from p0_receiver.core.key_usage import KEY_USAGE_FIELDS, key_usage
from p0_receiver.core.record import AuditRecord, RecordField
from p0_receiver.core.stats import STATS_FIELDS, AuditStats, count_records
from p0_receiver.entrypoints.cli.operator import operator_context, operator_errors
from p0_receiver.entrypoints.cli.options import DURATION, MOMENT, filter_options, record_filter
from p0_receiver.entrypoints.cli.output import (
    EXPORT_COLUMNS,
    LIST_COLUMNS,
    TIMELINE_COLUMNS,
    cell,
    counting_progress,
    for_people,
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
from p0_receiver.ports import ArchivedMessage, ArchiveLocation, AuditReader
from p0_receiver.usecases.audit.verify import DEFAULT_LAG, VerifyReport, explain, verify_archive
from p0_receiver.usecases.audit.views import (
    EVENT_ID_LENGTH,
    is_event_id_prefix,
    query_records,
    records_with_id_prefix,
    timeline,
    window,
)


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


def _event_id_or_prefix(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    # Checked before anything is read: the value then only ever reaches a message as hex.
    if not is_event_id_prefix(value):
        raise click.BadParameter(
            "expected an event id or its first 8 or more characters (lowercase hex)"
        )
    return value


# Two matches are enough to call a prefix ambiguous; reading more would only cost bodies.
_PREFIX_MATCHES_READ = 2


def _record_to_show(reader: AuditReader, event_id: str) -> tuple[str, AuditRecord]:
    """The record with this event id, or the one record whose event id starts with it."""
    if len(event_id) == EVENT_ID_LENGTH:
        record = reader.get(event_id)
        if record is None:
            raise click.ClickException(f"no audit record with event id {event_id}")
        return event_id, record
    matches = records_with_id_prefix(reader, event_id, limit=_PREFIX_MATCHES_READ)
    if not matches:
        raise click.ClickException("no audit record has an event id starting with those characters")
    # The ids come from the database: escaped, in case a stored one is not hex any more.
    found = [for_people(str(record.get(RecordField.EVENT_ID, ""))) for record in matches]
    if len(found) > 1:
        raise click.ClickException(
            f"{len(found)} or more audit records have an event id starting with those "
            f"characters ({', '.join(found)}); give more of the event id"
        )
    return found[0], matches[0]


@audit.command()
@click.argument("event_id", metavar="EVENT_ID", callback=_event_id_or_prefix)
@click.option("--raw", is_flag=True, help="Print exactly the bytes P0 sent, nothing else.")
@format_option(choices=("table", "json"))
@operator_errors
def show(event_id: str, raw: bool, output_format: str) -> None:
    """Show one record: its fields, the token's claims, the verbatim body, an integrity check.

    EVENT_ID is the whole event id or its first 8 or more characters, if only one record's
    event id starts with them.

    Exits 1 if the stored body no longer matches its digest or event id, or a field derived
    from the body (approver, reason, principal, ...) no longer matches the body.
    """
    event_id, record = _record_to_show(operator_context().reader(), event_id)
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


KEY_USAGE_COLUMNS = ("keyThumbprint", "keyId", "records", "firstUse", "lastUse")


@audit.command()
@click.option(
    "--since", type=MOMENT, default="7d", show_default=True, help="Window start (inclusive)."
)
@click.option("--until", type=MOMENT, help="Window end (exclusive; default now).")
@click.option(
    "--by",
    type=click.Choice(("key",)),
    help="key: per verifying key (RFC 7638 thumbprint), how many records and first/last use.",
)
@format_option()
@operator_errors
def stats(since: datetime, until: datetime | None, by: str | None, output_format: str) -> None:
    """Counts by event type, day (UTC) and publish status over a window of receivedAt;
    with --by key, which key verified the records and when each was first and last used."""
    if until is not None and since >= until:
        raise click.BadParameter("must be later than --since", param_hint="'--until'")
    context = operator_context()
    span = {"since": json_safe(since), "until": json_safe(until)}
    out = stdout()
    if by == "key":
        uses = key_usage(
            window(context.reader(), since=since, until=until, fields=KEY_USAGE_FIELDS)
        )
        rows = [use.as_row() for use in uses]
        if output_format == "json":
            click.echo(json_text({**span, "keys": json_safe(rows)}, indent=2))
            return
        if output_format == "table":
            wide_console(out).print(
                plain(
                    f"{sum(use.count for use in uses)} records received {span['since']} .. "
                    f"{span['until'] or 'now'}, by the key that verified their token"
                )
            )
        with row_writer(output_format, out, KEY_USAGE_COLUMNS) as writer:
            for row in rows:
                writer.write(row)
        return
    result = count_records(window(context.reader(), since=since, until=until, fields=STATS_FIELDS))
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


FINDING_COLUMNS = ("kind", "eventId", "messageId", "object", "detail")


def _archive_location(_ctx: click.Context, _param: click.Parameter, value: str) -> ArchiveLocation:
    try:
        return ArchiveLocation.parse(value)
    except ValueError as problem:
        raise click.BadParameter(str(problem)) from None


def _verify_document(location: ArchiveLocation, report: VerifyReport) -> dict[str, Any]:
    return {
        "archive": str(location),
        "since": json_safe(report.since),
        "until": json_safe(report.until),
        "publishedBefore": json_safe(report.expected_before),
        "ok": report.ok,
        "counts": report.counts(),
        "findings": [finding.as_row() for finding in report.findings],
    }


@audit.command()
@click.option(
    "--archive",
    "location",
    required=True,
    callback=_archive_location,
    metavar="gs://BUCKET[/PREFIX]",
    help="Where the Cloud Storage subscription writes (terraform output archive_uri).",
)
@click.option(
    "--since", type=MOMENT, default="7d", show_default=True, help="Window start (inclusive)."
)
@click.option("--until", type=MOMENT, help="Window end (exclusive; default now).")
@click.option(
    "--lag",
    type=DURATION,
    default=f"{int(DEFAULT_LAG.total_seconds() // 60)}m",
    show_default=True,
    help="Records published more recently are not expected in the archive yet.",
)
@format_option(choices=("table", "json"))
@operator_errors
def verify(
    location: ArchiveLocation,
    since: datetime,
    until: datetime | None,
    lag: timedelta,
    output_format: str,
) -> None:
    """Check the audit log against the write-once archive of every published message.

    Every archived message of the window must have its record, with the same body, and the
    record must still agree with that body; every record published in the window must have
    its archived message. Exits 1 on any mismatch.
    """
    context = operator_context()
    now = context.now()
    end = until or now
    if since >= end:
        raise click.BadParameter("must be later than --since", param_hint="'--until'")
    with counting_progress("messages") as progress:
        task = progress.add_task(f"reading {location}", total=None)

        def advance(_message: ArchivedMessage) -> None:
            progress.advance(task)

        report = verify_archive(
            context.archive(),
            context.reader(),
            location,
            since=since,
            until=end,
            now=now,
            lag=lag,
            on_message=advance,
        )
    out = stdout()
    if output_format == "json":
        click.echo(json_text(_verify_document(location, report), indent=2))
    else:
        console = wide_console(out)
        console.print(
            plain(
                f"verified {location}: messages published {json_safe(since)} .. "
                f"{json_safe(end)}; records published before {json_safe(report.expected_before)}"
            )
        )
        with row_writer("table", out, ("check", "count")) as writer:
            for name, count in report.counts().items():
                writer.write({"check": name, "count": count})
        if report.findings:
            with row_writer("table", out, FINDING_COLUMNS) as writer:
                for finding in report.findings:
                    writer.write(finding.as_row())
    kinds = sorted({finding.kind for finding in report.findings})
    if report.ok:
        tell(
            "verify: ok (every archived message has its unaltered record, and every published "
            "record its archived message)"
        )
        return
    tell(
        f"verify: {len(report.findings)} mismatch(es): "
        + "; ".join(f"{kind}: {explain(kind)}" for kind in kinds)
    )
    raise SystemExit(1)
