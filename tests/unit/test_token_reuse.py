"""Token reuse: what a P0 burst looks like is accepted and flagged; a captured token is not.

Each test signs real tokens (RS256 and EdDSA sign deterministically: the same claims in the
same second are the same string; ES256 does not) and drives the delivery service over the
in-memory ports, with the arrival time relative to the token's ``iat``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from p0_receiver.core.errors import AuthFailure, DownstreamUnavailableError, TokenReplayError
from p0_receiver.core.keys import parse_public_keys
from p0_receiver.core.quarantine import QuarantineReason, QuarantineStatus
from p0_receiver.core.record import message_attributes
from p0_receiver.core.tokens import TokenPolicy, TokenVerifier
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.settings import TokenReusePolicy
from p0_receiver.usecases.deliver import (
    MAX_EVENTS_PER_TOKEN,
    DeliveryOutcome,
    DeliveryPolicy,
    DeliveryService,
    DeliveryStatus,
)
from tests.fakes import (
    InMemoryAuditLog,
    InMemoryFirstDelivery,
    InMemoryPublisher,
    InMemoryQuarantine,
    InMemoryTokenLedger,
)
from tests.support import AUDIENCE, ISSUER, SUBJECT, keypair, token


def body(n: int) -> bytes:
    document = json.loads(PREAPPROVAL_CREATED)
    return json.dumps({**document, "data": {**document["data"], "id": f"burst-{n}"}}).encode()


class Receiver:
    def __init__(self, algorithm: str, policy: TokenReusePolicy = TokenReusePolicy.BURST) -> None:
        # When P0 signs this test's tokens: now, so that they are valid while the test runs.
        self.issued = datetime.now(tz=UTC).replace(microsecond=0)
        self.key = keypair(algorithm)
        self.ledger = InMemoryTokenLedger()
        self.audit = InMemoryAuditLog()
        self.publisher = InMemoryPublisher()
        self.quarantine = InMemoryQuarantine()
        self.service = DeliveryService(
            TokenVerifier(
                parse_public_keys(self.key.public_pem.decode()),
                TokenPolicy(issuer=ISSUER, audience=AUDIENCE, subject=SUBJECT),
            ),
            self.ledger,
            self.audit,
            self.publisher,
            DeliveryPolicy(
                retention_days=30,
                reject_unknown_event_types=False,
                leeway_seconds=30,
                token_reuse=policy,
                token_burst_seconds=5,
            ),
            quarantine=self.quarantine,
            first_delivery=InMemoryFirstDelivery(self.ledger, self.audit),
        )

    def p0_token(self) -> str:
        """What P0 signs at ``issued``: identical claims for every event of a burst."""
        issued = int(self.issued.timestamp())
        return token(self.key, iat=issued, exp=issued + 300)

    def deliver(self, raw: str, payload: bytes, *, after_seconds: float = 1) -> DeliveryOutcome:
        verified = self.service.authenticate(f"Bearer {raw}")
        return self.service.accept(
            verified, payload, now=self.issued + timedelta(seconds=after_seconds)
        )


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA"])
def test_a_p0_burst_with_a_deterministic_algorithm_is_accepted_and_flagged(
    algorithm: str,
) -> None:
    receiver = Receiver(algorithm)
    tokens = [receiver.p0_token() for _ in range(3)]
    assert len(set(tokens)) == 1  # what P0's signer produces for one burst
    outcomes = [receiver.deliver(raw, body(n)) for n, raw in enumerate(tokens)]

    assert [o.status for o in outcomes] == [DeliveryStatus.ACCEPTED] * 3
    first = outcomes[0].event_id
    assert outcomes[0].token_reuse is None
    for outcome in outcomes[1:]:
        assert outcome.token_reuse is not None
        assert (outcome.token_reuse.first_event_id, outcome.token_reuse.algorithm) == (
            first,
            algorithm,
        )
        record = receiver.audit.records[outcome.event_id]
        assert record["tokenReuse"] == {
            "firstEventId": first,
            "fingerprint": outcome.token_reuse.fingerprint,
        }
    assert "tokenReuse" not in receiver.audit.records[first]
    flags = [attributes.get("tokenReuse") for _, _, attributes in receiver.publisher.messages]
    assert flags == [None, "true", "true"]
    assert receiver.quarantine.entries == {}


def test_a_captured_randomized_token_replayed_with_another_body_is_refused_and_kept() -> None:
    receiver = Receiver("ES256")
    captured = receiver.p0_token()
    first = receiver.deliver(captured, body(0))
    with pytest.raises(TokenReplayError) as caught:
        receiver.deliver(captured, body(1))  # within the burst window: ES256 never repeats

    assert caught.value.reason is AuthFailure.TOKEN_REPLAYED
    assert caught.value.first_event_id == first.event_id
    assert list(receiver.audit.records) == [first.event_id]
    assert len(receiver.publisher.messages) == 1
    receipt = caught.value.quarantine
    assert receipt is not None
    assert (receipt.reason, receipt.status) == (
        QuarantineReason.TOKEN_REUSED,
        QuarantineStatus.STORED,
    )
    held = receiver.quarantine.entries[receipt.quarantine_id]
    assert held["body"] == body(1)
    assert held["details"] == {"firstEventId": first.event_id}
    assert held["tokenFingerprint"] == first_fingerprint(receiver)


def first_fingerprint(receiver: Receiver) -> str:
    (fingerprint,) = receiver.ledger.entries
    return fingerprint


def test_two_es256_tokens_with_identical_claims_in_the_same_second_are_two_tokens() -> None:
    receiver = Receiver("ES256")
    first, second = receiver.p0_token(), receiver.p0_token()
    outcomes = [receiver.deliver(first, body(0)), receiver.deliver(second, body(1))]
    assert [o.status for o in outcomes] == [DeliveryStatus.ACCEPTED] * 2
    assert all(o.token_reuse is None for o in outcomes)
    assert len(receiver.ledger.entries) == 2


def test_deterministic_reuse_after_the_burst_window_is_a_replay() -> None:
    receiver = Receiver("RS256")
    raw = receiver.p0_token()
    receiver.deliver(raw, body(0))
    with pytest.raises(TokenReplayError) as caught:
        receiver.deliver(raw, body(1), after_seconds=6)
    assert caught.value.quarantine is not None
    assert len(receiver.audit.records) == 1


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA", "ES256"])
def test_reject_mode_refuses_every_reuse(algorithm: str) -> None:
    receiver = Receiver(algorithm, TokenReusePolicy.REJECT)
    raw = receiver.p0_token()
    receiver.deliver(raw, body(0))
    with pytest.raises(TokenReplayError):
        receiver.deliver(raw, body(1))
    assert len(receiver.audit.records) == 1
    assert len(receiver.quarantine.entries) == 1


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_accept_mode_accepts_every_reuse_flagged(algorithm: str) -> None:
    receiver = Receiver(algorithm, TokenReusePolicy.ACCEPT)
    raw = receiver.p0_token()
    receiver.deliver(raw, body(0))
    late = receiver.deliver(raw, body(1), after_seconds=120)
    assert late.status is DeliveryStatus.ACCEPTED
    assert late.token_reuse is not None
    assert receiver.audit.records[late.event_id]["tokenReuse"]["firstEventId"] != late.event_id


def test_same_token_and_same_body_is_still_a_harmless_duplicate_in_reject_mode() -> None:
    receiver = Receiver("RS256", TokenReusePolicy.REJECT)
    raw = receiver.p0_token()
    receiver.deliver(raw, body(0))
    again = receiver.deliver(raw, body(0), after_seconds=60)
    assert again.status is DeliveryStatus.DUPLICATE
    assert receiver.quarantine.entries == {}


def test_p0_retrying_an_accepted_reuse_after_the_window_is_a_duplicate_not_a_replay() -> None:
    receiver = Receiver("RS256")
    raw = receiver.p0_token()
    receiver.deliver(raw, body(0))
    reused = receiver.deliver(raw, body(1))
    retried = receiver.deliver(raw, body(1), after_seconds=60)  # P0 retries the same delivery
    assert (retried.status, retried.event_id, retried.token_reuse) == (
        DeliveryStatus.DUPLICATE,
        reused.event_id,
        None,
    )
    assert receiver.quarantine.entries == {}


def test_ledger_failure_while_accepting_a_reuse_writes_nothing() -> None:
    receiver = Receiver("RS256")
    raw = receiver.p0_token()
    receiver.deliver(raw, body(0))
    fingerprint = first_fingerprint(receiver)
    receiver.ledger.unavailable = True
    with pytest.raises(DownstreamUnavailableError):
        receiver.deliver(raw, body(1))
    receiver.ledger.unavailable = False
    assert receiver.ledger.entries[fingerprint]["reusedBy"] == []
    assert len(receiver.audit.records) == 1
    # P0's retry then goes through as the reuse it is.
    assert receiver.deliver(raw, body(1)).token_reuse is not None


def test_even_accept_mode_stops_at_the_per_token_ceiling() -> None:
    receiver = Receiver("RS256", TokenReusePolicy.ACCEPT)
    raw = receiver.p0_token()
    for n in range(MAX_EVENTS_PER_TOKEN):
        receiver.deliver(raw, body(n))
    with pytest.raises(TokenReplayError):
        receiver.deliver(raw, body(MAX_EVENTS_PER_TOKEN))
    assert len(receiver.audit.records) == MAX_EVENTS_PER_TOKEN


def test_message_attribute_flags_reuse_only_when_the_record_says_so() -> None:
    receiver = Receiver("RS256")
    raw = receiver.p0_token()
    first = receiver.deliver(raw, body(0))
    reused = receiver.deliver(raw, body(1))
    assert "tokenReuse" not in message_attributes(receiver.audit.records[first.event_id])
    assert message_attributes(receiver.audit.records[reused.event_id])["tokenReuse"] == "true"
