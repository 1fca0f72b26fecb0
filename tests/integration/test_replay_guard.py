"""The replay guard and the quarantine, attacked through a real server on both emulators.

Each test plays what an attacker holding a captured token would send (a re-encoded copy, the
ECDSA twin, another body) or what P0 itself sends (a burst of byte-identical RS256/EdDSA
tokens), then reads Firestore and the topic to see what was kept and what was published.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from p0_receiver.core.tokens import CURVE_ORDERS, token_fingerprint
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.devtools.simulator import DeliveryResponse, post_delivery
from p0_receiver.devtools.stack import FunctionServer, function_server
from tests.conftest import Stack
from tests.support import ecdsa_twin, keypair, padded, token

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def body(n: int, **data: Any) -> bytes:
    document = json.loads(PREAPPROVAL_CREATED)
    merged = {**document["data"], "id": f"replay-{n}", **data}
    return json.dumps({**document, "data": merged}).encode()


def p0_token(
    algorithm: str = "ES256", *, age_seconds: int = 0, issued: int | None = None, **claims: Any
) -> str:
    issued = (int(time.time()) if issued is None else issued) - age_seconds
    return token(keypair(algorithm), iat=issued, exp=issued + 300, **claims)


@pytest.fixture
def served(stack: Stack) -> Iterator[tuple[Stack, FunctionServer]]:
    with function_server(stack.function_env()) as server:
        yield stack, server


def send(server: FunctionServer, payload: bytes, raw_token: str) -> DeliveryResponse:
    return post_delivery(server.url, payload, token=raw_token)


@pytest.mark.parametrize("algorithm", ["ES256", "ES384"])
def test_the_ecdsa_twin_of_a_captured_token_is_a_replay(stack: Stack, algorithm: str) -> None:
    captured = p0_token(algorithm)
    twin = ecdsa_twin(captured, CURVE_ORDERS[algorithm])
    env = stack.function_env(P0_PUBLIC_KEYS=keypair(algorithm).public_pem.decode())
    with function_server(env) as server:
        assert send(server, body(0), captured).status == 200
        answer = send(server, body(1), twin)
    assert (answer.status, answer.json()["error"]["reason"]) == (401, "token_replayed")
    assert len(stack.records()) == 1
    assert len(stack.messages()) == 1
    (held,) = stack.quarantined()
    assert (held["reason"], held["body"]) == ("token_reused", body(1))
    assert held["tokenFingerprint"] == token_fingerprint(captured, algorithm)


def test_a_padded_copy_of_a_captured_token_is_refused(served: tuple[Stack, FunctionServer]) -> None:
    stack, server = served
    captured = p0_token()
    assert send(server, body(0), captured).status == 200
    answer = send(server, body(1), padded(captured))
    assert (answer.status, answer.json()["error"]["reason"]) == (401, "malformed_token")
    assert len(stack.records()) == 1
    assert stack.quarantined() == []  # not authentic as sent: nothing of it is kept


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA"])
def test_a_p0_burst_of_identical_tokens_is_recorded_and_flagged(
    stack: Stack, algorithm: str
) -> None:
    issued = int(time.time())
    burst = [p0_token(algorithm, issued=issued) for _ in range(3)]
    assert len(set(burst)) == 1, "the same second gives the same token"
    env = stack.function_env(
        P0_PUBLIC_KEYS=keypair(algorithm).public_pem.decode(),
        # A loaded CI machine may take seconds to serve three requests: the window's edge is
        # the unit tests' business, here only "a burst is accepted" is.
        P0_TOKEN_BURST_SECONDS="30",
    )
    with function_server(env) as server:
        answers = [send(server, body(n), raw) for n, raw in enumerate(burst)]
    assert [a.status for a in answers] == [200, 200, 200]
    first, *reused = (a.json()["eventId"] for a in answers)
    for event_id in reused:
        record = stack.record(event_id)
        assert record is not None
        assert record["tokenReuse"]["firstEventId"] == first
    messages = {m.attributes["eventId"]: m.attributes for m in stack.messages()}
    assert "tokenReuse" not in messages[first]
    assert all(messages[event_id]["tokenReuse"] == "true" for event_id in reused)
    assert stack.quarantined() == []


def test_two_es256_tokens_with_identical_claims_are_both_accepted(
    served: tuple[Stack, FunctionServer],
) -> None:
    stack, server = served
    issued = int(time.time())
    first, second = p0_token(issued=issued), p0_token(issued=issued)
    assert first.rpartition(".")[0] == second.rpartition(".")[0]
    assert [send(server, body(0), first).status, send(server, body(1), second).status] == [200, 200]
    assert len(stack.records()) == 2
    assert all("tokenReuse" not in record for record in stack.records())


def test_deterministic_reuse_after_the_burst_window_is_a_replay(stack: Stack) -> None:
    old = p0_token("RS256", age_seconds=20)
    env = stack.function_env(P0_PUBLIC_KEYS=keypair("RS256").public_pem.decode())
    with function_server(env) as server:
        assert send(server, body(0), old).status == 200
        answer = send(server, body(1), old)
    assert (answer.status, answer.json()["error"]["reason"]) == (401, "token_replayed")
    assert [held["reason"] for held in stack.quarantined()] == ["token_reused"]


def test_reject_mode_refuses_even_a_burst(stack: Stack) -> None:
    raw = p0_token("RS256")  # well inside the burst window: only the mode refuses it
    env = stack.function_env(
        P0_PUBLIC_KEYS=keypair("RS256").public_pem.decode(), P0_TOKEN_REUSE="reject"
    )
    with function_server(env) as server:
        assert send(server, body(0), raw).status == 200
        assert send(server, body(1), raw).status == 401
    assert len(stack.records()) == 1
    assert len(stack.quarantined()) == 1


def test_a_ledger_entry_without_its_event_fails_closed(
    served: tuple[Stack, FunctionServer],
) -> None:
    stack, server = served
    raw = p0_token()
    stack.firestore_collection(stack.token_collection).document(
        token_fingerprint(raw, "ES256")
    ).set({"firstSeenAt": "unknown"})
    answer = send(server, body(0), raw)
    assert (answer.status, answer.json()["error"]["reason"]) == (503, "ledger_unavailable")
    assert stack.records() == []


def test_a_record_firestore_refuses_is_422_and_quarantined(
    served: tuple[Stack, FunctionServer],
) -> None:
    stack, server = served
    nested: Any = "deep"
    for _ in range(25):  # Firestore stores maps at most 20 levels deep
        nested = {"level": nested}
    answer = send(server, body(0), p0_token(context=nested))
    assert (answer.status, answer.json()["error"]["code"]) == (422, "unstorable_record")
    assert stack.records() == []
    assert stack.messages() == []
    (held,) = stack.quarantined()
    assert (held["reason"], held["body"]) == ("unstorable", body(0))
    assert json.loads(held["token"]["claims"])["context"] == nested


def test_a_body_with_many_long_time_fields_is_still_stored(
    served: tuple[Stack, FunctionServer],
) -> None:
    stack, server = served
    fields = {f"field{n}{'x' * 2000}At": 1_700_000_000_000 + n for n in range(3)}
    fields |= {f"custom{n}At": 1_700_000_000_000 + n for n in range(100)}
    answer = send(server, body(0, **fields), p0_token())
    assert answer.status == 200
    record = stack.record(answer.json()["eventId"])
    assert record is not None
    assert len(record["p0Times"]) == 32
    assert all(len(name) <= 64 for name in record["p0Times"])


def test_schema_drift_is_kept_once_per_body_and_bounded_per_token(stack: Stack) -> None:
    captured = p0_token()
    captured_fingerprint = token_fingerprint(captured, "ES256")
    drifted = [body(n, type=None) for n in range(9)]
    env = stack.function_env(QUARANTINE_MAX_PER_TOKEN="3")

    def held_by_captured() -> list[dict[str, Any]]:
        return [e for e in stack.quarantined() if e["tokenFingerprint"] == captured_fingerprint]

    with function_server(env) as server:
        # Concurrent refusals under one token: the bound is kept atomically (a refusal whose
        # transaction loses every retry is still a 422, just not kept).
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(lambda b: send(server, b, captured).status, drifted[:6]))
        assert statuses == [422] * 6
        assert 1 <= len(held_by_captured()) <= 3
        # One at a time, the token fills up to its bound and no further.
        assert [send(server, b, captured).status for b in drifted[6:]] == [422] * 3
        assert len(held_by_captured()) == 3
        repeat = drifted[0]
        assert send(server, repeat, p0_token()).status == 422

    held = stack.quarantined()
    assert {entry["reason"] for entry in held} == {"schema_violation"}
    # The repeated body, under another token, is still one entry.
    (entry,) = [e for e in held if e["body"] == repeat]
    if entry["tokenFingerprint"] == captured_fingerprint:
        assert (entry["count"], len(held)) == (2, 3)
    else:
        assert (entry["count"], len(held)) == (1, 4)
    assert stack.records() == []
