"""``p0-receiver quarantine``: list, show, release and discard refused authentic bodies.

Everything in an entry but its timestamps and counts came from P0's side of the wire (the body,
the reason's violation paths, the token's claims): it is printed as data, never as markup. The
release itself is ``p0_receiver.usecases.release``; this module only asks and prints.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from typing import Any

import click
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from p0_receiver.core.quarantine import QuarantineField, QuarantineReason
from p0_receiver.entrypoints.cli.operator import operator_context, operator_errors
from p0_receiver.entrypoints.cli.output import (
    cell,
    format_option,
    json_panel_text,
    json_safe,
    json_text,
    plain,
    row_writer,
    stdout,
    tell,
    wide_console,
)
from p0_receiver.usecases.release import (
    ReleaseOutcome,
    ReleaseRequest,
    ReleaseStatus,
    SideState,
    release,
)

_ID = re.compile(r"^[0-9a-f]{64}$")
STATUS = "status"
# What a listing shows: when, why, how often, what became of it, and the id to act on.
QUARANTINE_COLUMNS = (
    QuarantineField.LAST_RECEIVED_AT,
    QuarantineField.REASON,
    QuarantineField.COUNT,
    STATUS,
    QuarantineField.RELEASED_EVENT_ID,
    QuarantineField.QUARANTINE_ID,
)


def _quarantine_id(_: click.Context, __: click.Parameter, value: str) -> str:
    # The id is a Firestore document id: a slash would name another path.
    if not _ID.fullmatch(value):
        raise click.BadParameter("a quarantine id is 64 lowercase hex digits (the body's SHA-256)")
    return value


def _status(entry: Mapping[str, Any]) -> str:
    return "released" if entry.get(QuarantineField.RELEASED_EVENT_ID) else "held"


def _row(entry: Mapping[str, Any]) -> dict[str, Any]:
    shown = {name: value for name, value in entry.items() if name != QuarantineField.BODY}
    return dict(sorted(shown.items())) | {STATUS: _status(entry)}


@click.group()
def quarantine() -> None:
    """Authentic deliveries the receiver refused and kept: inspect, release or discard them."""


@quarantine.command("list")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="At most N entries (0 = all).",
)
@click.option(
    "--reason",
    type=click.Choice([reason.value for reason in QuarantineReason]),
    help="Only entries kept for this reason.",
)
@format_option()
@operator_errors
def list_command(limit: int, reason: str | None, output_format: str) -> None:
    """Entries, most recently received first (no bodies: `show` prints one)."""
    desk = operator_context().quarantine()
    with row_writer(output_format, stdout(), QUARANTINE_COLUMNS) as writer:
        for entry in desk.list_entries(limit=limit or None, reason=reason):
            writer.write(_row(entry))
    if writer.count == 0 and output_format == "table":
        tell("no entry is kept for that reason" if reason else "the quarantine is empty")


def _token_document(entry: Mapping[str, Any]) -> dict[str, Any]:
    kept = entry.get(QuarantineField.TOKEN)
    kept = kept if isinstance(kept, Mapping) else {}
    document: dict[str, Any] = {}
    for part in ("header", "claims"):
        try:
            document[part] = json.loads(kept.get(part) or "null")
        except (TypeError, ValueError):
            document[part] = json_safe(kept.get(part))
    return document


def _body_matches(entry: Mapping[str, Any], quarantine_id: str) -> bool:
    body = entry.get(QuarantineField.BODY)
    return (
        isinstance(body, bytes | bytearray | memoryview)
        and hashlib.sha256(bytes(body)).hexdigest() == quarantine_id
    )


@quarantine.command()
@click.argument("quarantine_id", callback=_quarantine_id)
@click.option("--raw", is_flag=True, help="Print exactly the bytes P0 sent, nothing else.")
@format_option(choices=("table", "json"))
@operator_errors
def show(quarantine_id: str, raw: bool, output_format: str) -> None:
    """One entry: why it was refused, the token's header and claims, the body as P0 sent it.

    Exits 1 if the stored body no longer hashes to the entry's id.
    """
    entry = operator_context().quarantine().get(quarantine_id)
    if entry is None:
        raise click.ClickException(f"no quarantine entry {quarantine_id}")
    if raw:
        stream = sys.stdout.buffer
        stream.write(bytes(entry.get(QuarantineField.BODY) or b""))
        stream.flush()
        return
    intact = _body_matches(entry, quarantine_id)
    hidden = (QuarantineField.BODY, QuarantineField.TOKEN)
    fields = json_safe({k: v for k, v in _row(entry).items() if k not in hidden})
    try:
        body: Any = json.loads(bytes(entry.get(QuarantineField.BODY) or b""))
    except ValueError:
        body = json_safe(entry.get(QuarantineField.BODY))
    verdict = (
        "integrity: ok (the body hashes to the entry's id)"
        if intact
        else "integrity: WARNING the body no longer hashes to the entry's id"
    )
    if output_format == "json":
        document = {
            "entry": fields,
            "token": _token_document(entry),
            "body": body,
            "integrity": {"ok": intact},
        }
        click.echo(json_text(document, indent=2))
    else:
        console = wide_console(stdout())
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for name, value in fields.items():
            table.add_row(plain(name), plain(cell(value)))
        console.print(Panel(table, title=plain(f"quarantine entry {quarantine_id}")))
        console.print(
            Panel(json_panel_text(_token_document(entry)), title=Text("token (header, claims)"))
        )
        console.print(Panel(json_panel_text(body), title=Text("body as P0 sent it")))
        console.print(plain(verdict), style=None if intact else "bold red")
    if not intact:
        if output_format == "json":
            tell(verdict)
        raise SystemExit(1)


@quarantine.command("release")
@click.argument("quarantine_id", callback=_quarantine_id)
@click.option(
    "--accept-reuse",
    is_flag=True,
    help="Release a body that came under a token already used with another body.",
)
@click.option(
    "--as-unrecognised",
    is_flag=True,
    help="Record a body that still does not match this code's model as 'unrecognised'.",
)
@operator_errors
def release_command(quarantine_id: str, accept_reuse: bool, as_unrecognised: bool) -> None:
    """Re-parse the body with the code deployed now, record it and publish it (released=true).

    The record carries releasedFrom {quarantineId, reason, releasedAt}. A body that is already
    an audit record gets no second one. If Pub/Sub fails, the record stays 'received' for a
    redrive and the command exits 1.
    """
    context = operator_context()
    outcome = release(
        ReleaseRequest(quarantine_id, accept_reuse=accept_reuse, as_unrecognised=as_unrecognised),
        context.quarantine(),
        context.reader(),
        context.audit_log(),
        context.publisher(),
        context.ledger(),
        retention_days=context.settings.audit_retention_days,
        now=context.now(),
    )
    for line in release_report(quarantine_id, outcome):
        tell(line)
    if outcome.failure is not None or SideState.UNREACHABLE in (outcome.entry, outcome.ledger):
        raise SystemExit(1)


def release_report(quarantine_id: str, outcome: ReleaseOutcome) -> list[str]:
    """One line for the record, then one for each side a release touches that needs saying."""
    what = {
        ReleaseStatus.RELEASED: "recorded and published",
        ReleaseStatus.UNPUBLISHED: "recorded",
        ReleaseStatus.ALREADY_RECORDED: "already recorded (no second record, nothing published)",
    }[outcome.status]
    lines = [
        f"released {quarantine_id}: {what} as {outcome.event_id} (shapeCheck {outcome.shape}, "
        f"publishStatus {outcome.record_status})"
    ]
    if outcome.failure is not None:
        failure = outcome.failure
        lines.append(
            f"publish failed: {failure.reason} ({failure.detail or 'unknown'}); the record stays "
            "'received' for `p0-receiver redrive`"
        )
    elif outcome.record_status != "published":
        lines.append(
            "the record is 'received': the release that created it, or the scheduled redrive, "
            "publishes it (`p0-receiver redrive --min-age 0s` does it now)"
        )
    if outcome.ledger is SideState.DONE:
        lines.append("token ledger: P0 delivering this body again under its token is a duplicate")
    elif outcome.ledger is SideState.GONE:
        lines.append("token ledger: the token has expired from it (a delivery under it is refused)")
    elif outcome.ledger is SideState.UNREACHABLE:
        lines.append(
            "token ledger: not updated (Firestore did not answer); run the release again, which "
            "creates no second record"
        )
    if outcome.entry is SideState.GONE:
        lines.append("quarantine entry: gone meanwhile (discarded, or past its retention)")
    elif outcome.entry is SideState.UNREACHABLE:
        lines.append(
            "quarantine entry: not marked released (Firestore did not answer); run the release "
            "again, which creates no second record"
        )
    return lines


@quarantine.command()
@click.argument("quarantine_id", callback=_quarantine_id)
@click.option("--yes", is_flag=True, help="Confirm: the body is deleted for good.")
@operator_errors
def discard(quarantine_id: str, yes: bool) -> None:
    """Delete an entry for good (the body is lost: `show --raw` keeps a copy)."""
    if not yes:
        raise click.UsageError(
            f"discarding deletes the body for good; pass --yes to discard {quarantine_id}"
        )
    if not operator_context().quarantine().discard(quarantine_id):
        raise click.ClickException(f"no quarantine entry {quarantine_id}")
    tell(f"discarded {quarantine_id}")
