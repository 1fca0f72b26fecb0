"""Key usage over a window: first and last use per thumbprint, newest key first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from p0_receiver.core.key_usage import UNKNOWN_KEY, key_usage

START = datetime(2026, 11, 1, tzinfo=UTC)


def record(thumbprint: str | None, kid: str | None, hours: int) -> dict[str, object]:
    return {"keyThumbprint": thumbprint, "keyId": kid, "receivedAt": START + timedelta(hours=hours)}


def test_a_rotation_shows_both_keys_and_when_each_was_last_used() -> None:
    records = [
        record("old", "p0-2025", 1),
        record("old", "p0-2025", 5),
        record("new", "p0-2026", 4),
        record("new", "p0-2026", 9),
        record("new", "p0-2026", 7),
    ]
    rows = [use.as_row() for use in key_usage(records)]
    assert rows == [
        {
            "keyThumbprint": "new",
            "keyId": "p0-2026",
            "records": 3,
            "firstUse": START + timedelta(hours=4),
            "lastUse": START + timedelta(hours=9),
        },
        {
            "keyThumbprint": "old",
            "keyId": "p0-2025",
            "records": 2,
            "firstUse": START + timedelta(hours=1),
            "lastUse": START + timedelta(hours=5),
        },
    ]


def test_records_from_before_keys_were_recorded_are_counted_apart() -> None:
    (use,) = key_usage([record(None, None, 1), {"receivedAt": "not a time"}])
    assert (use.thumbprint, use.count, use.key_ids) == (UNKNOWN_KEY, 2, set())
    assert use.first == START + timedelta(hours=1)


def test_an_empty_window() -> None:
    assert key_usage([]) == []
