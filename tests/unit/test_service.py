"""The delivery use case over in-memory ports: nothing lost, nothing forged, nothing doubled."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from p0_receiver.core.errors import AuthFailure, DownstreamUnavailableError, TokenReplayError
from p0_receiver.core.keys import parse_public_keys
from p0_receiver.core.record import AuditRecord
from p0_receiver.core.tokens import TokenPolicy, TokenVerifier, VerifiedToken
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.usecases.deliver import (
    DeliveryOutcome,
    DeliveryPolicy,
    DeliveryService,
    DeliveryStatus,
    publish_record,
)
from tests.fakes import (
    InMemoryAuditLog,
    InMemoryFirstDelivery,
    InMemoryPublisher,
    InMemoryQuarantine,
    InMemoryTokenLedger,
)
from tests.support import AUDIENCE, ISSUER, SUBJECT, keypair, token

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
OTHER_BODY = json.dumps({**json.loads(PREAPPROVAL_CREATED), "name": "Changed"}).encode()


class World:
    def __init__(self) -> None:
        self.ledger = InMemoryTokenLedger()
        self.audit = InMemoryAuditLog()
        self.publisher = InMemoryPublisher()
        self.quarantine = InMemoryQuarantine()
        self.first_delivery = InMemoryFirstDelivery(self.ledger, self.audit)
        verifier = TokenVerifier(
            parse_public_keys(keypair().public_pem.decode()),
            TokenPolicy(issuer=ISSUER, audience=AUDIENCE, subject=SUBJECT),
        )
        self.service = DeliveryService(
            verifier,
            self.ledger,
            self.audit,
            self.publisher,
            DeliveryPolicy(retention_days=30, reject_unknown_event_types=False, leeway_seconds=30),
            quarantine=self.quarantine,
            first_delivery=self.first_delivery,
        )

    def deliver(
        self, body: bytes = PREAPPROVAL_CREATED, raw_token: str | None = None
    ) -> DeliveryOutcome:
        verified = self.service.authenticate(f"Bearer {raw_token or token()}")
        return self.service.accept(verified, body, now=NOW)

    def only_record(self) -> AuditRecord:
        (record,) = self.audit.records.values()
        return record


@pytest.fixture
def world() -> World:
    return World()


def test_first_delivery_is_recorded_then_published(world: World) -> None:
    outcome = world.deliver()
    assert outcome.status is DeliveryStatus.ACCEPTED
    assert outcome.message_id == "1"
    record = world.only_record()
    assert (record["publishStatus"], record["messageId"], record["publishAttempts"]) == (
        "published",
        "1",
        1,
    )
    ((_, data, attributes),) = world.publisher.messages
    assert data == PREAPPROVAL_CREATED
    assert attributes["eventId"] == outcome.event_id == record["eventId"]


def test_duplicate_delivery_counts_but_does_not_republish(world: World) -> None:
    first = world.deliver()
    second = world.deliver()  # P0 retried with a fresh token
    assert second.status is DeliveryStatus.DUPLICATE
    assert second.event_id == first.event_id
    assert world.only_record()["deliveryCount"] == 2
    assert len(world.publisher.messages) == 1


def test_same_token_same_body_is_a_harmless_duplicate(world: World) -> None:
    raw = token()
    world.deliver(raw_token=raw)
    assert world.deliver(raw_token=raw).status is DeliveryStatus.DUPLICATE
    assert len(world.publisher.messages) == 1


def test_same_token_other_body_is_a_replay_and_writes_nothing(world: World) -> None:
    raw = token()
    first = world.deliver(raw_token=raw)
    with pytest.raises(TokenReplayError) as caught:
        world.deliver(OTHER_BODY, raw_token=raw)
    assert caught.value.reason is AuthFailure.TOKEN_REPLAYED
    assert caught.value.first_event_id == first.event_id
    assert len(world.audit.records) == 1
    assert len(world.publisher.messages) == 1


def test_audit_failure_publishes_nothing(world: World) -> None:
    world.audit.unavailable = True
    with pytest.raises(DownstreamUnavailableError) as caught:
        world.deliver()
    assert caught.value.reason == "audit_unavailable"
    assert world.publisher.messages == []


def test_ledger_failure_writes_nothing(world: World) -> None:
    world.ledger.unavailable = True
    with pytest.raises(DownstreamUnavailableError, match="temporarily"):
        world.deliver()
    assert (world.audit.records, world.publisher.messages) == ({}, [])


def test_publish_failure_leaves_record_received_and_redelivery_publishes(world: World) -> None:
    world.publisher.unavailable = True
    with pytest.raises(DownstreamUnavailableError) as caught:
        world.deliver()
    assert caught.value.reason == "publish_failed"
    record = world.only_record()
    assert (record["publishStatus"], record["publishAttempts"], record["lastPublishError"]) == (
        "received",
        1,
        "publish_failed: Injected",
    )

    world.publisher.unavailable = False
    outcome = world.deliver()
    assert outcome.status is DeliveryStatus.DUPLICATE
    assert outcome.message_id == "1"
    record = world.only_record()
    assert (record["publishStatus"], record["publishAttempts"], record["deliveryCount"]) == (
        "published",
        2,
        2,
    )
    assert len(world.publisher.messages) == 1
    # The message carries the first receipt's time, not the redelivery's.
    assert world.publisher.messages[0][2]["receivedAt"] == "2026-11-29T12:00:00.000Z"


def test_failure_to_mark_published_still_answers_success(world: World) -> None:
    world.audit.fail_marking = True
    outcome = world.deliver()
    assert outcome.publish_recorded is False
    assert world.only_record()["publishStatus"] == "received"  # a redrive will re-send it
    assert len(world.publisher.messages) == 1


def test_ledger_remembers_token_until_expiry_plus_leeway(world: World) -> None:
    raw = token()
    verified: VerifiedToken = world.service.authenticate(f"Bearer {raw}")
    world.service.accept(verified, PREAPPROVAL_CREATED, now=NOW)
    (entry,) = world.ledger.entries.values()
    assert (entry["expiresAt"] - verified.expires_at).total_seconds() == 30


def test_failed_replay_leaves_the_record_untouched(world: World) -> None:
    world.deliver()
    before = world.only_record().copy()
    world.publisher.unavailable = True
    with pytest.raises(DownstreamUnavailableError):
        publish_record(world.audit, world.publisher, before, now=NOW, replay=True)
    assert world.only_record() == before


def test_a_new_token_with_a_new_body_is_stored_in_one_commit(world: World) -> None:
    outcome = world.deliver()
    assert outcome.status is DeliveryStatus.ACCEPTED
    assert world.first_delivery.commits == 1
    (entry,) = world.ledger.entries.values()
    assert entry["eventId"] == outcome.event_id
    assert world.only_record()["publishStatus"] == "published"


def test_a_body_seen_before_falls_back_to_one_step_at_a_time(world: World) -> None:
    world.deliver()
    again = world.deliver()  # a fresh token, the same body: the commit writes nothing
    assert again.status is DeliveryStatus.DUPLICATE
    assert world.first_delivery.commits == 2
    assert len(world.ledger.entries) == 2  # the fallback remembered the second token
    assert world.only_record()["deliveryCount"] == 2


def test_without_the_combined_writer_every_delivery_takes_the_step_by_step_path() -> None:
    world = World()
    world.service = DeliveryService(
        TokenVerifier(
            parse_public_keys(keypair().public_pem.decode()),
            TokenPolicy(issuer=ISSUER, audience=AUDIENCE, subject=SUBJECT),
        ),
        world.ledger,
        world.audit,
        world.publisher,
        DeliveryPolicy(retention_days=30, reject_unknown_event_types=False, leeway_seconds=30),
        quarantine=world.quarantine,
    )
    assert world.deliver().status is DeliveryStatus.ACCEPTED
    assert world.first_delivery.commits == 0
    assert len(world.ledger.entries) == len(world.audit.records) == 1
