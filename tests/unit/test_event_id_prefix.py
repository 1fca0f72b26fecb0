"""``audit show`` by the start of an event id, over the in-memory reader: one match, several,
none, and the values refused before anything is read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result

from p0_receiver.adapters.clients import AuditBackends
from p0_receiver.core.queries import QueryShape
from p0_receiver.core.record import AuditRecord
from p0_receiver.entrypoints.cli import main
from p0_receiver.entrypoints.cli.operator import OperatorContext
from p0_receiver.settings import OperatorSettings
from p0_receiver.usecases.audit import views
from tests.fakes import InMemoryAuditLog, InMemoryAuditReader
from tests.unit.audit_records import NOW, body, store

HOUR = timedelta(hours=1)


class CountingReader(InMemoryAuditReader):
    """Notes every scan's limit, to prove a prefix never reads more than it needs."""

    def __init__(self, audit_log: InMemoryAuditLog) -> None:
        super().__init__(audit_log)
        self.limits: list[int | None] = []

    def scan(self, shape: QueryShape, **options: Any) -> Iterator[AuditRecord]:
        self.limits.append(options.get("limit"))
        return super().scan(shape, **options)


def keyed_as(audit_log: InMemoryAuditLog, event_id: str, object_id: str) -> None:
    """A record stored under a chosen event id (two real ids sharing a prefix are rare)."""
    record = audit_log.records.pop(store(audit_log, body(object_id), age=HOUR))
    record["eventId"] = event_id
    audit_log.records[event_id] = record


@pytest.fixture
def audit_log() -> InMemoryAuditLog:
    return InMemoryAuditLog()


def show(
    audit_log: InMemoryAuditLog, *args: str, reader: InMemoryAuditReader | None = None
) -> Result:
    def backends(_: OperatorSettings, __: int | None) -> AuditBackends:
        return AuditBackends(reader or InMemoryAuditReader(audit_log), audit_log)

    context = OperatorContext(
        environ={"GOOGLE_CLOUD_PROJECT": "acme-audit"}, clock=lambda: NOW, connect=backends
    )
    return CliRunner().invoke(main, ["audit", "show", *args], obj=context)


def test_the_prefix_range_holds_exactly_the_ids_that_start_with_it(
    audit_log: InMemoryAuditLog,
) -> None:
    for n, event_id in enumerate(
        ["abcd1233" + "f" * 56, "abcd1234" + "0" * 56, "abcd1234" + "f" * 56, "abcd1235" + "0" * 56]
    ):
        keyed_as(audit_log, event_id, f"R{n}")
    reader = InMemoryAuditReader(audit_log)
    found = [r["eventId"] for r in views.records_with_id_prefix(reader, "abcd1234", limit=5)]
    assert found == ["abcd1234" + "0" * 56, "abcd1234" + "f" * 56]
    assert [r["eventId"] for r in views.records_with_id_prefix(reader, "abcd1234f", limit=5)] == [
        "abcd1234" + "f" * 56
    ]
    assert views.records_with_id_prefix(reader, "abcd1236", limit=5) == []


@pytest.mark.parametrize("text", ["abcd123", "ABCD1234", "abcd123g", "abcd1234\n", "a" * 65, ""])
def test_the_view_refuses_what_is_not_an_event_id_prefix(text: str) -> None:
    assert not views.is_event_id_prefix(text)
    with pytest.raises(ValueError, match="8 to 64 lowercase hex"):
        views.records_with_id_prefix(InMemoryAuditReader(InMemoryAuditLog()), text, limit=2)


def test_a_unique_prefix_shows_the_whole_record(audit_log: InMemoryAuditLog) -> None:
    event_id = store(audit_log, body("R1"), age=HOUR)
    store(audit_log, body("R2"), age=HOUR)
    reader = CountingReader(audit_log)
    table = show(audit_log, event_id[:8], reader=reader)
    assert table.exit_code == 0, table.output
    assert f"audit record {event_id}" in table.stdout  # the whole id, not the prefix
    assert "integrity: ok" in table.stdout
    assert reader.limits == [2]

    document = json.loads(show(audit_log, event_id[:12], "--format", "json").stdout)
    assert document["record"]["eventId"] == event_id
    raw = show(audit_log, event_id[:8], "--raw")
    assert raw.stdout_bytes == bytes(audit_log.records[event_id]["body"])


def test_a_whole_event_id_is_read_directly(audit_log: InMemoryAuditLog) -> None:
    event_id = store(audit_log, body("R1"), age=HOUR)
    reader = CountingReader(audit_log)
    result = show(audit_log, event_id, reader=reader)
    assert result.exit_code == 0, result.output
    assert reader.limits == []  # a get, no query
    missing = show(audit_log, "0" * 64)
    assert missing.exit_code == 1
    assert f"no audit record with event id {'0' * 64}" in missing.stderr


def test_an_ambiguous_prefix_names_two_matches_and_fails(audit_log: InMemoryAuditLog) -> None:
    for n, suffix in enumerate("012"):
        keyed_as(audit_log, "abcd1234" + suffix * 56, f"R{n}")
    reader = CountingReader(audit_log)
    result = show(audit_log, "abcd1234", reader=reader)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: 2 or more audit records have an event id starting with those characters "
        f"(abcd1234{'0' * 56}, abcd1234{'1' * 56}); give more of the event id\n"
    )
    assert reader.limits == [2]  # a third match is never read
    one = show(audit_log, "abcd12342")
    assert one.exit_code == 1  # found; its integrity fails (its id was chosen, not derived)
    assert f"audit record abcd1234{'2' * 56}" in one.stdout


def test_a_stored_id_that_is_not_hex_is_shown_escaped(audit_log: InMemoryAuditLog) -> None:
    keyed_as(audit_log, "abcd1234" + "0" * 56, "R1")
    keyed_as(audit_log, "abcd1234\x1b[2J", "R2")  # edited behind the receiver's back
    result = show(audit_log, "abcd1234")
    assert result.exit_code == 1
    assert "\x1b" not in result.stderr
    assert "abcd1234\\x1b[2J" in result.stderr


def test_no_match_is_not_found(audit_log: InMemoryAuditLog) -> None:
    store(audit_log, body("R1"), age=HOUR)
    result = show(audit_log, "00000000")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no audit record has an event id starting with those characters\n"
    )


@pytest.mark.parametrize(
    "text", ["abcd123", "ABCD1234", "abcd123g", "abcd1234\x1b[2J", "a" * 65, "", "[bold]x"]
)
def test_what_is_not_an_event_id_prefix_is_a_usage_error_never_echoed(
    audit_log: InMemoryAuditLog, text: str
) -> None:
    reader = CountingReader(audit_log)
    result = show(audit_log, text, reader=reader)
    assert result.exit_code == 2
    assert "expected an event id or its first 8 or more characters (lowercase hex)" in (
        result.stderr
    )
    if text:
        assert text not in result.stderr
    assert reader.limits == []
