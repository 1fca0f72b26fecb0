"""Option types and the shared filter options of the operator commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import click

from p0_receiver.core.filters import RecordFilter, parse_duration, parse_moment
from p0_receiver.core.record import PublishStatus, RecordField
from p0_receiver.entrypoints.cli.operator import operator_context


class MomentType(click.ParamType[datetime, Any]):
    """ISO-8601 (UTC when no offset is given) or a relative age such as 24h or 7d."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_moment(str(value), now=operator_context().now())
        except ValueError as problem:
            self.fail(str(problem), param, ctx)


class DurationType(click.ParamType[timedelta, Any]):
    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as problem:
            self.fail(str(problem), param, ctx)


F = TypeVar("F", bound=Callable[..., Any])

MOMENT = MomentType()
DURATION = DurationType()

# (flag, record field, help): the equality filters; each has its index in Terraform.
EQUALITY_OPTIONS = (
    ("--type", RecordField.EVENT_TYPE, "P0 event type, e.g. request-approved."),
    ("--principal", RecordField.PRINCIPAL, "Who the access is for (data.principal)."),
    ("--approver", RecordField.APPROVER, "Who approved (approver email or id)."),
    ("--notifier", RecordField.NOTIFIER_ID, "The notifier's id (the envelope's id)."),
    ("--object-id", RecordField.OBJECT_ID, "P0's request or pre-approval id (data.id)."),
)


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def filter_options(*, default_limit: int | None) -> Callable[[F], F]:
    """--type ... --status, --since/--until and --limit, as click options."""

    def decorate(command: F) -> F:
        limit_help = (
            f"At most N records (default {default_limit}; 0: no limit)."
            if default_limit
            else "At most N records (default: no limit)."
        )
        options = [
            *(
                click.option(flag, _dest(flag), metavar="VALUE", help=text)
                for flag, _, text in EQUALITY_OPTIONS
            ),
            click.option(
                "--status",
                type=click.Choice([str(status) for status in PublishStatus]),
                help="Publish status of the record.",
            ),
            click.option(
                "--since", type=MOMENT, help="Received at or after (ISO-8601, or 24h, 7d ago)."
            ),
            click.option(
                "--until", type=MOMENT, help="Received before (ISO-8601, or 24h, 7d ago)."
            ),
            click.option(
                "--limit", type=click.IntRange(min=0), default=default_limit or 0, help=limit_help
            ),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def record_filter(options: dict[str, Any]) -> RecordFilter:
    """The filter the options describe; an impossible combination is a usage error."""
    equals = {
        field: options[_dest(flag)]
        for flag, field, _ in EQUALITY_OPTIONS
        if options.get(_dest(flag)) is not None
    }
    if options.get("status"):
        equals[RecordField.PUBLISH_STATUS] = options["status"]
    for flag, field, _ in EQUALITY_OPTIONS:
        value = equals.get(field)
        if value is not None and not value.strip():
            raise click.BadParameter("must not be empty", param_hint=f"'{flag}'")
    since, until = options.get("since"), options.get("until")
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("must be later than --since", param_hint="'--until'")
    return RecordFilter(equals=equals, since=since, until=until, limit=options.get("limit") or None)
