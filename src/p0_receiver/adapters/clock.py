"""The system clock: where the functions and the CLI read the time (the core is handed it)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(tz=UTC)
