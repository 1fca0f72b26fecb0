"""audit verify's comparison: records written by the delivery service over in-memory ports,
messages as the publisher sent them, each kind of tampering found, nothing else reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from p0_receiver.core.keys import parse_public_keys
from p0_receiver.core.record import AuditRecord
from p0_receiver.core.tokens import TokenPolicy, TokenVerifier
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED, SAMPLES
from p0_receiver.ports import ArchivedMessage, ArchiveLocation
from p0_receiver.usecases.audit.verify import (
    FindingKind,
    VerifyReport,
    check_message,
    check_published_record,
    verify_archive,
)
from p0_receiver.usecases.deliver import DeliveryPolicy, DeliveryService
from tests.fakes import (
    InMemoryAuditLog,
    InMemoryAuditReader,
    InMemoryPublisher,
    InMemoryQuarantine,
    InMemoryTokenLedger,
)
from tests.support import AUDIENCE, ISSUER, SUBJECT, keypair, token

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LOCATION = ArchiveLocation("archive", "events/")


class InMemoryArchive:
    """The archive port over a list of messages (what the subscription would have written)."""

    def __init__(self) -> None:
        self.stored: list[ArchivedMessage] = []

    def messages(
        self, location: ArchiveLocation, *, since: datetime | None, until: datetime
    ) -> Iterator[ArchivedMessage]:
        assert location == LOCATION
        for message in self.stored:
            if (since is None or message.publish_time >= since) and message.publish_time < until:
                yield message


class CountingReader(InMemoryAuditReader):
    """The in-memory read port, remembering which records were fetched one by one."""

    def __init__(self, audit_log: InMemoryAuditLog) -> None:
        super().__init__(audit_log)
        self.gets: list[str] = []

    def get(self, event_id: str) -> AuditRecord | None:
        self.gets.append(event_id)
        return super().get(event_id)


class World:
    def __init__(self) -> None:
        self.audit = InMemoryAuditLog()
        self.publisher = InMemoryPublisher()
        self.archive = InMemoryArchive()
        self.reader = CountingReader(self.audit)
        verifier = TokenVerifier(
            parse_public_keys(keypair().public_pem.decode()),
            TokenPolicy(issuer=ISSUER, audience=AUDIENCE, subject=SUBJECT),
        )
        self.service = DeliveryService(
            verifier,
            InMemoryTokenLedger(),
            self.audit,
            self.publisher,
            DeliveryPolicy(retention_days=30, reject_unknown_event_types=False, leeway_seconds=30),
            quarantine=InMemoryQuarantine(),
        )
        self.first = ""
        self.second = ""

    def deliver(self, body: bytes, *, at: datetime) -> str:
        verified = self.service.authenticate(f"Bearer {token()}")
        return self.service.accept(verified, body, now=at).event_id

    def archive_published(self, *, at: datetime) -> None:
        """What the Cloud Storage subscription would have written for every publish so far."""
        for number, (message_id, data, attributes) in enumerate(self.publisher.messages):
            if number >= len(self.archive.stored):
                self.archive.stored.append(
                    ArchivedMessage(message_id, at, attributes, data, "gs://archive/events/1")
                )

    def verify(self, *, now: datetime = NOW + timedelta(hours=1)) -> VerifyReport:
        return verify_archive(
            self.archive,
            self.reader,
            LOCATION,
            since=NOW - timedelta(days=1),
            until=now,
            now=now,
        )


@pytest.fixture
def world() -> World:
    world = World()
    world.first = world.deliver(PREAPPROVAL_CREATED, at=NOW)
    world.second = world.deliver(SAMPLES["request-approved"], at=NOW)
    world.archive_published(at=NOW)
    return world


def kinds(report: VerifyReport) -> list[tuple[str, str]]:
    return [(str(f.kind), f.event_id) for f in report.findings]


def test_a_clean_window_verifies(world: World) -> None:
    report = world.verify()
    assert report.ok
    assert report.counts() == {
        "archivedMessages": 2,
        "archivedEvents": 2,
        "replayMessages": 0,
        "publishedRecords": 2,
        **{str(kind): 0 for kind in FindingKind},
    }


def test_a_deleted_record_is_reported(world: World) -> None:
    del world.audit.records[world.first]
    assert kinds(world.verify()) == [("record_missing", world.first)]


def test_an_edited_body_is_reported(world: World) -> None:
    record = world.audit.records[world.first]
    record["body"] = record["body"].replace(b"fancy demo", b"small demo")
    found = kinds(world.verify())
    assert ("body_altered", world.first) in found
    assert {kind for kind, _ in found} == {"body_altered", "fields_altered"}


def test_an_edited_lifted_field_is_reported_by_the_integrity_check(world: World) -> None:
    world.audit.records[world.second]["approver"] = "mallory@acme.example"
    (finding,) = world.verify().findings
    assert finding.kind is FindingKind.FIELDS_ALTERED
    assert finding.event_id == world.second
    assert "approver" in finding.detail


def test_a_message_with_no_record_is_reported(world: World) -> None:
    body = json.dumps({**json.loads(PREAPPROVAL_CREATED), "name": "Never delivered"}).encode()
    other = World()
    event_id = other.deliver(body, at=NOW)
    ((message_id, data, attributes),) = other.publisher.messages
    world.archive.stored.append(ArchivedMessage("x" + message_id, NOW, attributes, data, "obj"))
    assert kinds(world.verify()) == [("record_missing", event_id)]


def test_a_message_whose_event_id_is_not_its_data_is_not_ours(world: World) -> None:
    (first, _) = world.archive.stored
    forged = ArchivedMessage("99", NOW, first.attributes, b'{"forged": true}', "obj")
    world.archive.stored.append(forged)
    # A typed eventId is never used to look a record up.
    pathy = ArchivedMessage("98", NOW, {"eventId": "../../other/doc"}, b"{}", "obj")
    world.archive.stored.append(pathy)
    assert kinds(world.verify()) == [
        ("not_our_message", world.first),
        ("not_our_message", "../../other/doc"),
    ]
    assert "../../other/doc" not in world.reader.gets
    unattributed = ArchivedMessage("100", NOW, {}, PREAPPROVAL_CREATED, "obj")
    assert [f.kind for f in check_message(unattributed, None)] == [FindingKind.NOT_OUR_MESSAGE]


def test_a_published_record_missing_from_the_archive_is_reported(world: World) -> None:
    world.archive.stored.pop()
    assert kinds(world.verify()) == [("not_archived", world.second)]


def test_records_published_within_the_lag_are_not_expected_yet(world: World) -> None:
    world.archive.stored.clear()
    # Ten minutes after the publish, the subscription may not have closed its object yet.
    assert world.verify(now=NOW + timedelta(minutes=10)).ok
    assert len(world.verify(now=NOW + timedelta(minutes=16)).findings) == 2


def test_replays_are_counted_and_looked_up_once(world: World) -> None:
    first = world.archive.stored[0]
    replay = ArchivedMessage("7", NOW, {**first.attributes, "replay": "true"}, first.data, "o")
    world.archive.stored.append(replay)
    report = world.verify()
    assert report.ok
    assert (report.messages, report.events, report.replays) == (3, 2, 1)
    assert sorted(world.reader.gets) == sorted([world.first, world.second])


def test_a_received_record_is_not_expected_in_the_archive() -> None:
    def record(**fields: Any) -> AuditRecord:
        return cast("AuditRecord", {"eventId": "e", **fields})

    received = record(publishStatus="received", publishedAt=None)
    assert check_published_record(received, set(), expected_before=NOW) is None
    published = record(publishStatus="published", publishedAt=NOW)
    assert check_published_record(published, set(), expected_before=NOW) is None
    earlier = record(publishStatus="published", publishedAt=NOW - timedelta(seconds=1))
    finding = check_published_record(earlier, set(), expected_before=NOW)
    assert finding is not None
    assert finding.kind is FindingKind.NOT_ARCHIVED
    assert check_published_record(earlier, {"e"}, expected_before=NOW) is None


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [("gs://b", "b", ""), ("gs://b/", "b", ""), ("gs://b/events/", "b", "events/")],
)
def test_archive_locations(uri: str, bucket: str, prefix: str) -> None:
    assert ArchiveLocation.parse(uri) == ArchiveLocation(bucket, prefix)


@pytest.mark.parametrize("uri", ["b/events", "s3://b", "gs://", "gs:///events"])
def test_archive_locations_that_are_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="gs://"):
        ArchiveLocation.parse(uri)
