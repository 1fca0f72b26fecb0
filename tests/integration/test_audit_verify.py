"""audit verify on the real emulators: records written by the receiver's own delivery code on
Firestore, messages published on Pub/Sub and archived as the Cloud Storage subscription writes
them (Avro with metadata) in the Cloud Storage emulator; each kind of tampering is caught."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import Result

from p0_receiver.adapters.archive import CloudStorageArchive, storage_client
from p0_receiver.adapters.firestore import FirestoreAuditReader, firestore_client
from p0_receiver.core.events import event_id_for
from p0_receiver.core.thumbprints import jwk_thumbprint
from p0_receiver.devtools import archive as local_archive
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED, SAMPLES
from p0_receiver.ports import ArchiveLocation
from p0_receiver.usecases.audit.verify import VerifyReport, verify_archive
from tests.conftest import Stack
from tests.integration.cli_world import Receiver, cli, request_body, tamper
from tests.support import keypair

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


# --- the command ----------------------------------------------------------------------------


def _publish_around_the_receiver(stack: Stack, body: bytes, **attributes: str) -> None:
    import google.cloud.pubsub_v1 as pubsub_v1  # noqa: PLR0402 (mypy: untyped namespace)

    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(stack.project, stack.topic)
    publisher.publish(topic, body, **attributes).result(timeout=10)


def _verify(world: ArchiveWorld, *args: str) -> Result:
    return cli(
        world.stack,
        "audit",
        "verify",
        "--archive",
        f"gs://{world.bucket}/{PREFIX}",
        "--since",
        "1h",
        *args,
        now=world.now + timedelta(hours=1),
    )


def test_the_command_passes_a_clean_archive(world: ArchiveWorld) -> None:
    world.archive_topic()
    result = _verify(world, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert document["counts"]["archivedMessages"] == 2
    assert document["counts"]["publishedRecords"] == 2
    assert document["findings"] == []
    assert "verify: ok" in result.stderr


def test_the_command_catches_each_kind_of_tampering(world: ArchiveWorld) -> None:
    receiver = Receiver(world.stack)
    third = receiver.deliver(
        request_body(
            "request-created",
            object_id="Kl2mN3bV4cX5zA6sD7fG",
            principal="jane.doe@acme.example",
            permission="roles/cloudsql.client on prod-db",
            reason="Nightly reconciliation job failed",
            updated=world.now,
        ),
        at=world.now,
    )
    unrecorded = json.dumps({**json.loads(PREAPPROVAL_CREATED), "name": "Unrecorded"}).encode()
    _publish_around_the_receiver(
        world.stack, unrecorded, eventId=event_id_for(json.loads(unrecorded))
    )
    world.archive_topic(leave_out=third)
    world.delete_record(world.first)
    tamper(world.stack, world.second, approver="mallory@acme.example")
    result = _verify(world, "--format", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    found = sorted((f["kind"], f["eventId"]) for f in document["findings"])
    assert found == sorted(
        [
            ("record_missing", world.first),
            ("fields_altered", world.second),
            ("not_archived", third),
            ("record_missing", event_id_for(json.loads(unrecorded))),
        ]
    )
    assert document["counts"]["record_missing"] == 2
    assert "verify: 4 mismatch(es)" in result.stderr


def test_attacker_typed_attributes_are_shown_as_escapes(world: ArchiveWorld) -> None:
    # Anyone who can publish on the topic chooses the attributes an auditor will read.
    _publish_around_the_receiver(
        world.stack, b'{"x": 1}', eventId="\x1b]0;owned\x07\x1b[31m[red]\u202e"
    )
    world.archive_topic()
    result = _verify(world)
    assert result.exit_code == 1
    assert "\x1b" not in result.output
    assert "\u202e" not in result.output
    assert "\\x1b]0;owned\\x07\\x1b[31m[red]\\u202e" in result.stdout
    assert "not_our_message" in result.stdout


def test_a_bad_archive_uri_is_a_usage_error(world: ArchiveWorld) -> None:
    result = cli(world.stack, "audit", "verify", "--archive", "s3://elsewhere")
    assert result.exit_code == 2
    assert "is not a gs://BUCKET[/PREFIX] URI" in result.output


def test_stats_by_key_shows_a_rotation(stack: Stack) -> None:
    old, new = keypair("ES256", kid="p0-2025"), keypair("ES256", kid="p0-2026")
    receiver = Receiver(stack, public_keys=old.public_pem.decode() + new.public_pem.decode())
    now = datetime.now(tz=UTC)
    for minutes, key in ((50, old), (40, old), (30, new), (20, new), (10, new)):
        body = json.dumps({**json.loads(PREAPPROVAL_CREATED), "name": f"n{minutes}"}).encode()
        receiver.deliver(body, at=now - timedelta(minutes=minutes), key=key)
    result = cli(
        stack, "audit", "stats", "--by", "key", "--since", "2h", "--format", "json", now=now
    )
    assert result.exit_code == 0, result.output
    keys = json.loads(result.stdout)["keys"]
    assert [(k["keyThumbprint"], k["records"]) for k in keys] == [
        (jwk_thumbprint(new.public_jwk()), 3),
        (jwk_thumbprint(old.public_jwk()), 2),
    ]
    assert keys[1]["lastUse"] < keys[0]["firstUse"]  # the old key is no longer in use
    table = cli(stack, "audit", "stats", "--by", "key", "--since", "2h", now=now)
    assert jwk_thumbprint(new.public_jwk()) in table.stdout
    assert "5 records received" in table.stdout
