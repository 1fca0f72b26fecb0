"""audit verify on the real emulators: records written by the receiver's own delivery code on
Firestore, messages published on Pub/Sub and archived as the Cloud Storage subscription writes
them (Avro with metadata) in the Cloud Storage emulator; each kind of tampering is caught."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from p0_receiver.adapters.archive import CloudStorageArchive, storage_client
from p0_receiver.adapters.firestore import FirestoreAuditReader, firestore_client
from p0_receiver.auditlog.verify import VerifyReport, verify_archive
from p0_receiver.devtools import archive as local_archive
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED, SAMPLES
from p0_receiver.events import event_id_for
from p0_receiver.ports import ArchiveLocation
from tests.conftest import Stack
from tests.integration.cli_world import Receiver, tamper

pytestmark = pytest.mark.integration

PREFIX = "events/"


@dataclass
class ArchiveWorld:
    stack: Stack
    bucket: str
    now: datetime
    first: str
    second: str

    @property
    def location(self) -> ArchiveLocation:
        return ArchiveLocation(self.bucket, PREFIX)

    def archive_topic(self, *, leave_out: str | None = None) -> None:
        """What the Cloud Storage subscription writes: every message on the topic, one object."""
        messages = local_archive.drain_subscription(self.stack.project, self.stack.subscription)
        kept = [m for m in messages if m.attributes.get("eventId") != leave_out]
        local_archive.write_object(
            self.stack.project,
            self.bucket,
            local_archive.object_name(PREFIX, self.now),
            kept,
        )

    def verify(self) -> VerifyReport:
        later = self.now + timedelta(hours=1)
        reader = FirestoreAuditReader(
            firestore_client(self.stack.project, "(default)"), self.stack.collection, 5.0
        )
        return verify_archive(
            CloudStorageArchive(storage_client(self.stack.project), chunk_bytes=4096),
            reader,
            self.location,
            since=self.now - timedelta(hours=1),
            until=later,
            now=later,
        )

    def delete_record(self, event_id: str) -> None:
        from google.cloud import firestore

        client = firestore.Client(project=self.stack.project)
        client.collection(self.stack.collection).document(event_id).delete()


@pytest.fixture
def world(stack: Stack, storage_emulator: str) -> ArchiveWorld:
    now = datetime.now(tz=UTC)
    receiver = Receiver(stack)
    first = receiver.deliver(PREAPPROVAL_CREATED, at=now)
    second = receiver.deliver(SAMPLES["request-approved"], at=now)
    return ArchiveWorld(stack, f"archive-{stack.project}", now, first, second)


def findings(report: VerifyReport) -> list[tuple[str, str]]:
    return sorted((str(f.kind), f.event_id) for f in report.findings)


def test_a_clean_archive_verifies(world: ArchiveWorld) -> None:
    world.archive_topic()
    report = world.verify()
    assert report.findings == []
    assert (report.messages, report.events, report.published_records) == (2, 2, 2)


def test_a_deleted_record_is_caught(world: ArchiveWorld) -> None:
    world.archive_topic()
    world.delete_record(world.first)
    assert findings(world.verify()) == [("record_missing", world.first)]


def test_an_edited_body_is_caught(world: ArchiveWorld) -> None:
    world.archive_topic()
    edited = PREAPPROVAL_CREATED.replace(b"fancy demo", b"small demo")
    tamper(world.stack, world.first, body=edited)
    assert findings(world.verify()) == [
        ("body_altered", world.first),
        ("fields_altered", world.first),
    ]


def test_an_edited_lifted_field_is_caught(world: ArchiveWorld) -> None:
    world.archive_topic()
    tamper(world.stack, world.second, approver="mallory@acme.example")
    (finding,) = world.verify().findings
    assert (str(finding.kind), finding.event_id) == ("fields_altered", world.second)
    assert "fields that no longer match the body: approver" in finding.detail


def test_a_message_with_no_record_is_caught(world: ArchiveWorld) -> None:
    import google.cloud.pubsub_v1 as pubsub_v1  # noqa: PLR0402 (mypy: untyped namespace)

    # Published on the topic around the receiver: nothing was ever recorded for it.
    body = json.dumps({**json.loads(PREAPPROVAL_CREATED), "name": "Around the receiver"}).encode()
    forged = event_id_for(json.loads(body))
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(world.stack.project, world.stack.topic)
    publisher.publish(topic, body, eventId=forged).result(timeout=10)
    world.archive_topic()
    assert findings(world.verify()) == [("record_missing", forged)]


def test_a_published_record_missing_from_the_archive_is_caught(world: ArchiveWorld) -> None:
    world.archive_topic(leave_out=world.second)
    assert findings(world.verify()) == [("not_archived", world.second)]
