"""The operator's questions over the in-memory AuditReader, which answers like Firestore."""

from __future__ import annotations

from datetime import timedelta

import pytest

from p0_receiver.core.filters import RecordFilter
from p0_receiver.core.queries import AUDIT_LIST, Direction, QueryShape
from p0_receiver.core.stats import STATS_FIELDS, count_records
from p0_receiver.usecases.audit import views
from tests.fakes import InMemoryAuditLog, InMemoryAuditReader
from tests.unit.audit_records import NOW, body, store

HOUR = timedelta(hours=1)


@pytest.fixture
def audit_log() -> InMemoryAuditLog:
    return InMemoryAuditLog()


def test_query_filters_windows_and_limits_newest_first(audit_log: InMemoryAuditLog) -> None:
    ids = [store(audit_log, body(f"R{n}"), age=n * HOUR) for n in range(5)]
    store(audit_log, body("B", principal="bob@corp.example"), age=2 * HOUR + timedelta(minutes=1))
    reader = InMemoryAuditReader(audit_log)
    wanted = RecordFilter(
        equals={"principal": "alice@corp.example"},
        since=NOW - 4 * HOUR,
        until=NOW - HOUR + timedelta(seconds=1),
        limit=2,
    )
    listed = [record["eventId"] for record in views.query_records(reader, wanted)]
    assert listed == [ids[1], ids[2]]


def test_timeline_follows_p0s_time_not_arrival(audit_log: InMemoryAuditLog) -> None:
    # The approval (P0's earlier event) arrived last.
    created = store(
        audit_log, body("R1", event_type="request-created", occurred=NOW - HOUR), age=3 * HOUR
    )
    approved = store(
        audit_log, body("R1", event_type="request-approved", occurred=NOW - 2 * HOUR), age=HOUR
    )
    store(audit_log, body("R2"), age=HOUR)
    reader = InMemoryAuditReader(audit_log)
    assert [r["eventId"] for r in views.timeline(reader, "R1")] == [approved, created]


def test_pending_is_what_is_still_received_before_the_cutoff(audit_log: InMemoryAuditLog) -> None:
    old = store(audit_log, body("R1"), age=2 * HOUR)
    store(audit_log, body("R2"), age=3 * HOUR, published=True)
    store(audit_log, body("R3"), age=timedelta(minutes=1))
    reader = InMemoryAuditReader(audit_log)
    pending = views.pending_records(reader, received_before=NOW - HOUR)
    assert [r["eventId"] for r in pending] == [old]


def test_window_projects_only_the_fields_asked_for(audit_log: InMemoryAuditLog) -> None:
    store(audit_log, body("R1"), age=HOUR, published=True)
    store(audit_log, body("R2", event_type="request-created"), age=2 * HOUR)
    store(audit_log, body("R3"), age=10 * 24 * HOUR)
    reader = InMemoryAuditReader(audit_log)
    scanned = list(views.window(reader, since=NOW - 24 * HOUR, until=None, fields=STATS_FIELDS))
    assert all(set(record) == set(STATS_FIELDS) for record in scanned)
    stats = count_records(scanned)
    assert stats.dimensions() == {
        "eventType": {"request-approved": 1, "request-created": 1},
        "day": {"2024-05-10": 2},
        "publishStatus": {"published": 1, "received": 1},
    }


def test_the_fake_refuses_what_the_catalogue_does_not_cover(audit_log: InMemoryAuditLog) -> None:
    reader = InMemoryAuditReader(audit_log)
    rogue = QueryShape("rogue", ("reason",), "receivedAt", Direction.DESCENDING)
    with pytest.raises(ValueError, match="not in the catalogue"):
        reader.scan(rogue, equals={})
    with pytest.raises(ValueError, match="has no filter on"):
        reader.scan(AUDIT_LIST, equals={"reason": "x"})
