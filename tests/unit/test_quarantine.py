"""Quarantine: every authentic body the receiver refuses is kept, bounded, and never unrefused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from p0_receiver.core.errors import (
    SchemaViolationError,
    UnknownEventTypeError,
    UnstorableRecordError,
)
from p0_receiver.core.keys import parse_public_keys
from p0_receiver.core.quarantine import QuarantineReason, QuarantineStatus
from p0_receiver.core.tokens import TokenPolicy, TokenVerifier
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.usecases.deliver import DeliveryPolicy, DeliveryService
from tests.fakes import (
    InMemoryAuditLog,
    InMemoryFirstDelivery,
    InMemoryPublisher,
    InMemoryQuarantine,
    InMemoryTokenLedger,
)
from tests.support import AUDIENCE, ISSUER, SUBJECT, keypair, token

NOW = datetime.now(tz=UTC)
DRIFTED = json.dumps(
    {**json.loads(PREAPPROVAL_CREATED), "data": {"id": "x", "renamedByP0": True}}
).encode()


class World:
    def __init__(self, *, strict: bool = False, max_per_token: int = 10) -> None:
        self.ledger = InMemoryTokenLedger()
        self.audit = InMemoryAuditLog()
        self.publisher = InMemoryPublisher()
        self.quarantine = InMemoryQuarantine()
        self.service = DeliveryService(
            TokenVerifier(
                parse_public_keys(keypair().public_pem.decode()),
                TokenPolicy(issuer=ISSUER, audience=AUDIENCE, subject=SUBJECT),
            ),
            self.ledger,
            self.audit,
            self.publisher,
            DeliveryPolicy(
                retention_days=30,
                reject_unknown_event_types=strict,
                leeway_seconds=30,
                quarantine_retention_days=7,
                quarantine_max_per_token=max_per_token,
            ),
            quarantine=self.quarantine,
            first_delivery=InMemoryFirstDelivery(self.ledger, self.audit),
        )

    def deliver(self, payload: bytes, raw_token: str | None = None) -> None:
        verified = self.service.authenticate(f"Bearer {raw_token or token()}")
        self.service.accept(verified, payload, now=NOW)

    def nothing_recorded(self) -> bool:
        return not (self.ledger.entries or self.audit.records or self.publisher.messages)


def drifted(n: int) -> bytes:
    document = json.loads(DRIFTED)
    return json.dumps({**document, "data": {**document["data"], "id": f"x-{n}"}}).encode()


def test_schema_drift_is_refused_and_the_exact_body_kept() -> None:
    world = World()
    with pytest.raises(SchemaViolationError) as caught:
        world.deliver(DRIFTED)
    assert world.nothing_recorded()
    receipt = caught.value.quarantine
    assert receipt is not None
    assert (receipt.reason, receipt.status) == (
        QuarantineReason.SCHEMA_VIOLATION,
        QuarantineStatus.STORED,
    )
    held = world.quarantine.entries[receipt.quarantine_id]
    assert held["body"] == DRIFTED
    assert held["bodyBytes"] == len(DRIFTED)
    assert {"field": "data.type", "problem": "Field required"} in held["details"]["violations"]
    assert (held["firstReceivedAt"], held["count"]) == (NOW, 1)
    assert held["expireAt"] == NOW + timedelta(days=7)
    assert set(held["token"]) == {"header", "claims", "fingerprint"}
    assert "renamedByP0" not in json.dumps(held["details"])  # paths and problems, no values


def test_unknown_type_in_strict_mode_is_kept_with_its_own_reason() -> None:
    world = World(strict=True)
    unknown = json.dumps({"id": "n", "name": "x", "eventType": "brand-new", "data": {}}).encode()
    with pytest.raises(UnknownEventTypeError) as caught:
        world.deliver(unknown)
    assert caught.value.quarantine is not None
    assert caught.value.quarantine.reason is QuarantineReason.UNKNOWN_TYPE


def test_the_same_body_twice_is_one_entry_counted_twice() -> None:
    world = World()
    for _ in range(2):
        with pytest.raises(SchemaViolationError) as caught:
            world.deliver(DRIFTED)
    assert caught.value.quarantine is not None
    assert caught.value.quarantine.status is QuarantineStatus.REPEATED
    (held,) = world.quarantine.entries.values()
    assert held["count"] == 2


def test_a_captured_token_cannot_fill_the_quarantine() -> None:
    world = World(max_per_token=3)
    captured = token()
    statuses = []
    for n in range(5):
        with pytest.raises(SchemaViolationError) as caught:
            world.deliver(drifted(n), captured)
        assert caught.value.quarantine is not None
        statuses.append(caught.value.quarantine.status)
    assert statuses == [QuarantineStatus.STORED] * 3 + [QuarantineStatus.TOKEN_LIMIT] * 2
    assert len(world.quarantine.entries) == 3
    # Another token is not affected by the first one's bound.
    with pytest.raises(SchemaViolationError):
        world.deliver(drifted(9))
    assert len(world.quarantine.entries) == 4


def test_quarantine_outage_never_hides_the_refusal() -> None:
    world = World()
    world.quarantine.unavailable = True
    with pytest.raises(SchemaViolationError) as caught:
        world.deliver(DRIFTED)
    assert caught.value.quarantine is not None
    assert caught.value.quarantine.status is QuarantineStatus.FAILED
    assert world.nothing_recorded()


def test_a_record_firestore_refuses_for_good_is_422_and_kept() -> None:
    world = World()
    world.audit.refuse_as_invalid = True
    with pytest.raises(UnstorableRecordError) as caught:
        world.deliver(PREAPPROVAL_CREATED)
    assert caught.value.status == 422
    assert caught.value.quarantine is not None
    held = world.quarantine.entries[caught.value.quarantine.quarantine_id]
    assert (held["reason"], held["details"]) == ("unstorable", {"error": "InvalidArgument"})
    assert held["body"] == PREAPPROVAL_CREATED
    assert world.publisher.messages == []
