"""``p0-receiver doctor``: the deployment checklist, printed one line per check.

The checks are ``p0_receiver.usecases.doctor``; this module reads the options, prints the lines (as
text, never markup) and turns a failed check into exit 1.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import click

from p0_receiver.entrypoints.cli.operator import operator_context, operator_errors
from p0_receiver.entrypoints.cli.output import format_option, row_writer, stdout, tell
from p0_receiver.usecases.doctor import Check, DoctorOptions, Status, examine, failed

COLUMNS = ("status", "check", "detail", "fix")
_MARKS = {Status.OK: "✓ ok", Status.WARN: "! warn", Status.SKIP: "- skip", Status.FAIL: "✗ FAIL"}
# The secret's name goes into a request path: a stray slash would name another resource.
_SECRET = re.compile(r"^(projects/[A-Za-z0-9_.:-]+/secrets/)?[A-Za-z0-9_-]{1,255}$")
_ACCOUNT = re.compile(r"^(serviceAccount:)?[^@\s/]+@[^@\s/]+$")


def _secret(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _SECRET.fullmatch(value):
        raise click.BadParameter("a secret id, or projects/PROJECT/secrets/SECRET")
    return value


def _account(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _ACCOUNT.fullmatch(value):
        raise click.BadParameter("a service account email (NAME@PROJECT.iam.gserviceaccount.com)")
    return value


def _row(check: Check, output_format: str) -> dict[str, Any]:
    if output_format == "table":
        status: str = _MARKS[check.status]
        return {"status": status, "check": check.name, "detail": check.detail, "fix": check.fix}
    return {
        "check": check.name,
        "status": str(check.status),
        "detail": check.detail,
        "fix": check.fix,
        "facts": dict(check.facts),
    }


def _summary(checks: list[Check]) -> str:
    counts = Counter(check.status for check in checks)
    tally = ", ".join(
        f"{counts[status]} {label}"
        for status, label in (
            (Status.OK, "ok"),
            (Status.WARN, "warning(s)"),
            (Status.SKIP, "skipped"),
            (Status.FAIL, "failed"),
        )
        if counts[status]
    )
    if failed(checks):
        return f"{tally}: fix the failed checks before registering the webhook in P0"
    return f"{tally}: nothing failed (read the warnings and skipped checks before registering)"


@click.command()
@click.option(
    "--runtime-account",
    metavar="EMAIL",
    callback=_account,
    help="The function's service account (terraform output runtime_service_account): does the "
    "topic's IAM policy let it publish?",
)
@click.option(
    "--key-secret",
    metavar="SECRET",
    callback=_secret,
    help="The secret holding P0's public key(s) (terraform output p0_public_keys_secret): has it "
    "an enabled version?",
)
@format_option(choices=("table", "json"))
@operator_errors
def doctor(runtime_account: str | None, key_secret: str | None, output_format: str) -> None:
    """Check a deployment (or the emulators) before registering the webhook in P0.

    Reads the receiver's own variables, as the function would: settings, keys, pinned claims,
    Firestore (reachable; TTL policies and composite indexes through the admin API), the topic
    and who may publish to it, the key secret. Each line is ok, warn, skip or FAIL, with the fix.
    Exits 1 if any check failed.
    """
    context = operator_context()
    checks = examine(
        context.environ,
        lambda settings: context.connect_doctor(settings, context.environ),
        DoctorOptions(runtime_account=runtime_account, key_secret=key_secret),
    )
    with row_writer(output_format, stdout(), COLUMNS) as writer:
        for check in checks:
            writer.write(_row(check, output_format))
    tell(_summary(checks))
    if failed(checks):
        raise SystemExit(1)
