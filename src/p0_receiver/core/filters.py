"""What an operator asks for: filters, time windows (ISO-8601 or relative), validated values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from p0_receiver.core.queries import LIST_FILTER_FIELDS
from p0_receiver.core.record import PublishStatus, RecordField

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``5m``, ``24h``, ``7d``, ``2w``; raises ValueError otherwise."""
    match = _RELATIVE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 24h, 7d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_moment(text: str, *, now: datetime) -> datetime:
    """A relative age (``24h`` = 24 hours before ``now``) or an ISO-8601 time (UTC if naive)."""
    if _RELATIVE.match(text):
        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither ISO-8601 (2024-05-01, 2024-05-01T12:00:00Z) "
            "nor a relative age (24h, 7d)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class RecordFilter:
    """Equality filters on lifted fields plus a receivedAt window; newest first."""

    equals: Mapping[str, str] = field(default_factory=dict)
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    limit: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.equals) - set(LIST_FILTER_FIELDS)
        if unknown:
            raise ValueError(f"cannot filter on {sorted(unknown)}")
        status = self.equals.get(RecordField.PUBLISH_STATUS)
        if status is not None and status not in set(PublishStatus):
            raise ValueError(f"publish status must be one of {sorted(PublishStatus)}")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("the window is empty: since must be before until")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")

    def describe(self) -> str:
        parts = [f"{name}={value}" for name, value in sorted(self.equals.items())]
        if self.since:
            parts.append(f"since={self.since.isoformat()}")
        if self.until:
            parts.append(f"until={self.until.isoformat()}")
        return ", ".join(parts) or "everything"
