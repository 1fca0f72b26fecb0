"""End to end: a real functions-framework server serving main.py, on both emulators."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cloudevents.http import from_http

from p0_receiver.core.record import rfc3339
from p0_receiver.devtools.emulators import free_port
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED, REQUEST_APPROVED
from p0_receiver.devtools.simulator import DeliveryResponse, post_delivery
from p0_receiver.devtools.stack import FunctionServer, function_server
from tests.conftest import Stack
from tests.faults import switchable_proxy
from tests.support import (
    hs256_with_public_key,
    keypair,
    later,
    padded,
    token,
    unsigned_token,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
def served(stack: Stack) -> Iterator[tuple[Stack, FunctionServer]]:
    with function_server(stack.function_env()) as server:
        yield stack, server


@pytest.fixture(scope="module")
def served_for_rejections(
    emulators: dict[str, str],
) -> Iterator[tuple[Stack, FunctionServer]]:
    """One server for the rejection matrix: none of those requests may write anything."""
    stack = Stack(project=f"rejections-{uuid.uuid4().hex[:8]}", emulator_env=emulators)
    stack.create_topic()
    with function_server(stack.function_env()) as server:
        yield stack, server


def deliver(
    server: FunctionServer, body: bytes = PREAPPROVAL_CREATED, **kwargs: object
) -> DeliveryResponse:
    kwargs.setdefault("token", token())
    return post_delivery(server.url, body, **kwargs)  # type: ignore[arg-type]


def test_documented_example_is_stored_and_published_byte_for_byte(
    served: tuple[Stack, FunctionServer],
) -> None:
    stack, server = served
    answer = deliver(server)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    event_id = answer.json()["eventId"]
    assert answer.json() == {"status": "accepted", "eventId": event_id}

    record = stack.record(event_id)
    assert record is not None
    assert record["body"] == PREAPPROVAL_CREATED
    assert record["publishStatus"] == "published"
    assert record["token"]["claims"]["sub"] == "my-notifier-service"
    assert "Authorization" not in json.dumps(record, default=str)

    (message,) = stack.messages()
    assert message.data == PREAPPROVAL_CREATED
    assert message.message_id == record["messageId"]
    assert message.attributes == {
        "eventId": event_id,
        "eventType": "preapproval-created",
        "notifierId": "my-notifier-service",
        "objectId": "07ZmVeUxSc4LyhrGhlzK",
        "principal": "john.smith@p0.dev",
        "receivedAt": message.attributes["receivedAt"],
        "schemaVersion": "1",
        # P0's own example pre-approves the principal by the principal: a self-approval.
        "findings": "self-approval",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "//p0.dev/notifiers/my-notifier-service",
        "ce-type": "dev.p0.preapproval-created",
        "ce-time": rfc3339(record["occurredAt"]),
        "ce-subject": "07ZmVeUxSc4LyhrGhlzK",
        "ce-datacontenttype": "application/json",
    }
    # What a CloudEvents subscriber reads from the message pulled off the topic.
    headers = {k: v for k, v in message.attributes.items() if k.startswith("ce-")}
    headers["content-type"] = headers.pop("ce-datacontenttype")
    event = from_http(headers, message.data)
    assert (event["id"], event["type"], event["subject"]) == (
        event_id,
        "dev.p0.preapproval-created",
        "07ZmVeUxSc4LyhrGhlzK",
    )
    assert event.data == json.loads(PREAPPROVAL_CREATED)


def test_duplicate_delivery_answers_duplicate_and_publishes_once(
    served: tuple[Stack, FunctionServer],
) -> None:
    stack, server = served
    first = deliver(server)
    second = deliver(server)  # a retry by P0: same body, fresh token
    assert (first.status, second.status) == (200, 200)
    assert second.json() == {"status": "duplicate", "eventId": first.json()["eventId"]}
    (record,) = stack.records()
    assert record["deliveryCount"] == 2
    assert len(stack.messages()) == 1


def test_unknown_event_type_is_kept_verbatim_and_published(
    served: tuple[Stack, FunctionServer],
) -> None:
    stack, server = served
    body = (
        b'{"id":"n1","name":"N","eventType":"access-reviewed","data":{"novel":{"x":[1,2]}},"v":2}'
    )
    answer = deliver(server, body)
    assert answer.status == 200
    record = stack.record(answer.json()["eventId"])
    assert record is not None
    assert (record["body"], record["shapeCheck"]) == (body, "unrecognised")
    (message,) = stack.messages()
    assert (message.data, message.attributes["eventType"]) == (body, "access-reviewed")


def test_request_event_with_rs256_jwk_configuration(stack: Stack) -> None:
    rsa_key = keypair("RS256", kid="p0-rsa")
    jwks = json.dumps({"keys": [rsa_key.public_jwk()]})
    with function_server(stack.function_env(P0_PUBLIC_KEYS=jwks)) as server:
        answer = deliver(server, REQUEST_APPROVED, token=token(rsa_key))
    assert answer.status == 200
    record = stack.record(answer.json()["eventId"])
    assert record is not None
    assert (record["requestor"], record["token"]["header"]["alg"]) == ("jane.doe@p0.dev", "RS256")


def _post_chunked(url: str, body: bytes) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/",
            body=iter([body[i : i + 8192] for i in range(0, len(body), 8192)]),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token()}"},
            encode_chunked=True,
        )
        return connection.getresponse().status
    finally:
        connection.close()


OTHER_KEY = keypair("ES256", kid="not-p0")
Rejection = Callable[[FunctionServer], DeliveryResponse]
REJECTIONS: dict[str, tuple[Rejection, int, str]] = {
    "wrong-method": (lambda s: deliver(s, b"", method="GET"), 405, "method_not_allowed"),
    "content-type": (
        lambda s: deliver(s, content_type="text/plain"),
        415,
        "unsupported_media_type",
    ),
    "oversized": (lambda s: deliver(s, b" " * (64 * 1024 + 1)), 413, "payload_too_large"),
    "malformed-json": (lambda s: deliver(s, b'{"id": '), 400, "malformed_json"),
    "schema": (
        lambda s: deliver(s, b'{"id":"n","name":"N","eventType":"x"}'),
        422,
        "schema_violation",
    ),
    "no-header": (lambda s: deliver(s, token=None), 401, "missing_token"),
    "garbled-header": (
        lambda s: deliver(s, token=None, extra_headers={"Authorization": "Bearer %%%"}),
        401,
        "malformed_token",
    ),
    "expired": (lambda s: deliver(s, token=token(exp=later(-300))), 401, "expired"),
    "not-yet-valid": (
        lambda s: deliver(s, token=token(iat=later(900), exp=later(1000))),
        401,
        "not_yet_valid",
    ),
    "wrong-issuer": (lambda s: deliver(s, token=token(iss="https://x")), 401, "wrong_issuer"),
    "wrong-audience": (lambda s: deliver(s, token=token(aud="https://x")), 401, "wrong_audience"),
    "wrong-subject": (lambda s: deliver(s, token=token(sub="other")), 401, "wrong_subject"),
    "wrong-key": (lambda s: deliver(s, token=token(OTHER_KEY)), 401, "bad_signature"),
    "alg-none": (lambda s: deliver(s, token=unsigned_token()), 401, "disallowed_algorithm"),
    "hs256-public-key": (
        lambda s: deliver(s, token=hs256_with_public_key(keypair())),
        401,
        "disallowed_algorithm",
    ),
    "padded-signature": (lambda s: deliver(s, token=padded(token())), 401, "malformed_token"),
    "numeric-string-iat": (
        lambda s: deliver(s, token=token(iat=str(later(0)))),
        401,
        "malformed_token",
    ),
    "overlong-lifetime": (
        lambda s: deliver(s, token=token(exp=later(2 * 3600))),
        401,
        "lifetime_too_long",
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_every_rejection_is_json_and_writes_and_publishes_nothing(
    served_for_rejections: tuple[Stack, FunctionServer], case: str
) -> None:
    stack, server = served_for_rejections
    send, status, code = REJECTIONS[case]
    held_before = len(stack.quarantined())
    answer = send(server)
    assert answer.status == status
    error = answer.json()["error"]
    assert code in (error["code"], error.get("reason"))
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert stack.nothing_written()
    # Only an authentic body that fails our schema is kept (in quarantine, for an operator).
    assert len(stack.quarantined()) == held_before + (status == 422)


def test_chunked_oversized_body_is_refused(
    served_for_rejections: tuple[Stack, FunctionServer],
) -> None:
    stack, server = served_for_rejections
    assert _post_chunked(server.url, b" " * (200 * 1024)) == 413
    assert stack.nothing_written()


def test_reused_token_with_another_body_is_a_replay(served: tuple[Stack, FunctionServer]) -> None:
    stack, server = served
    stolen = token()
    assert deliver(server, token=stolen).status == 200
    stack.messages()  # drain the legitimate message
    tampered = json.dumps({**json.loads(PREAPPROVAL_CREATED), "name": "Forged"}).encode()
    answer = deliver(server, tampered, token=stolen)
    assert answer.status == 401
    assert answer.json()["error"]["reason"] == "token_replayed"
    assert len(stack.records()) == 1
    assert stack.messages() == []
    # The same token with the same body is only a duplicate delivery.
    assert deliver(server, token=stolen).json()["status"] == "duplicate"


def test_audit_write_failure_is_503_and_publishes_nothing(stack: Stack) -> None:
    dead_firestore = f"127.0.0.1:{free_port()}"
    env = stack.function_env(FIRESTORE_EMULATOR_HOST=dead_firestore, FIRESTORE_TIMEOUT_SECONDS="1")
    with function_server(env) as server:
        answer = deliver(server)
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "30"
    assert answer.json()["error"]["reason"] in {"ledger_unavailable", "audit_unavailable"}
    assert stack.nothing_written()


def test_a_connection_the_warm_up_cannot_open_is_reported_and_deliveries_still_answer(
    stack: Stack, tmp_path: Path
) -> None:
    dead_firestore = f"127.0.0.1:{free_port()}"
    env = stack.function_env(FIRESTORE_EMULATOR_HOST=dead_firestore, FIRESTORE_TIMEOUT_SECONDS="1")
    log = tmp_path / "function.log"
    with log.open("wb") as sink, function_server(env, stdout=sink.fileno()) as server:
        deadline = time.monotonic() + 30
        while '"p0_warm_up_done"' not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        answer = deliver(server)
    (warmed, *_) = [
        json.loads(line) for line in log.read_text().splitlines() if '"p0_warm_up_done"' in line
    ]
    assert warmed["notConnected"] == ["Firestore"]
    assert answer.status == 503  # the retryable answer, exactly as without the warm-up
    assert stack.nothing_written()


def test_publish_failure_is_503_record_stays_received_then_redelivery_publishes(
    stack: Stack,
) -> None:
    missing_topic = f"not-yet-{uuid.uuid4().hex[:6]}"
    with function_server(stack.function_env(PUBSUB_TOPIC=missing_topic)) as server:
        failed = deliver(server)
        assert failed.status == 503
        assert failed.json()["error"]["reason"] == "publish_failed"
        (record,) = stack.records()
        assert record["publishStatus"] == "received"
        assert record["publishAttempts"] == 1
        assert record["lastPublishError"] == "publish_failed: NotFound"

        # The operator fixes the topic; P0 (or anyone) redelivers the same body.
        recovered = Stack(
            stack.project, stack.emulator_env, topic=missing_topic, subscription="recovered"
        )
        recovered.create_topic()
        again = deliver(server)
    assert again.status == 200
    assert again.json()["status"] == "duplicate"
    (record,) = stack.records()
    assert (record["publishStatus"], record["publishAttempts"], record["deliveryCount"]) == (
        "published",
        2,
        2,
    )
    (message,) = recovered.messages()
    assert message.data == PREAPPROVAL_CREATED
    assert message.message_id == record["messageId"]


def test_unreachable_pubsub_fails_within_the_publish_budget(stack: Stack) -> None:
    dead_pubsub = f"127.0.0.1:{free_port()}"
    env = stack.function_env(PUBSUB_EMULATOR_HOST=dead_pubsub, PUBSUB_PUBLISH_TIMEOUT_SECONDS="1")
    with function_server(env) as server:
        started = time.monotonic()
        answer = deliver(server)
        elapsed = time.monotonic() - started
    assert answer.status == 503
    assert elapsed < 10
    (record,) = stack.records()
    assert record["publishStatus"] == "received"
    assert str(record["lastPublishError"]).startswith("publish_failed: ")


def test_concurrent_identical_deliveries_make_one_record(
    served: tuple[Stack, FunctionServer],
) -> None:
    stack, server = served
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: deliver(server), range(8)))
    assert sorted(a.status for a in answers) == [200] * 8
    assert sorted(a.json()["status"] for a in answers).count("accepted") == 1
    (record,) = stack.records()
    assert (record["deliveryCount"], record["publishStatus"]) == (8, "published")
    messages = stack.messages()
    assert messages  # at least once; duplicates carry the same eventId for subscribers
    assert {m.attributes["eventId"] for m in messages} == {record["eventId"]}


def test_pubsub_outage_then_recovery_through_the_same_server(stack: Stack) -> None:
    with switchable_proxy(stack.emulator_env["PUBSUB_EMULATOR_HOST"]) as pubsub_link:
        env = stack.function_env(
            PUBSUB_EMULATOR_HOST=pubsub_link.address, PUBSUB_PUBLISH_TIMEOUT_SECONDS="1"
        )
        with function_server(env) as server:
            failed = deliver(server)  # Pub/Sub unreachable: connections refused
            assert failed.status == 503
            assert failed.json()["error"]["reason"] == "publish_failed"
            (record,) = stack.records()
            assert record["publishStatus"] == "received"

            pubsub_link.up()
            # P0 retries; the client's gRPC channel may still be in its reconnect back-off for
            # a few seconds, during which the retries are answered 503 again.
            for _ in range(15):
                recovered = deliver(server)
                if recovered.status == 200:
                    break
                assert recovered.status == 503
                time.sleep(1)
            assert recovered.status == 200
            assert recovered.json()["status"] == "duplicate"
    (record,) = stack.records()
    assert record["publishStatus"] == "published"
    assert record["deliveryCount"] >= 2
    assert len(stack.messages()) == 1


def test_each_worker_builds_its_clients_after_the_fork_before_any_delivery(
    stack: Stack, tmp_path: Path
) -> None:
    log = tmp_path / "function.log"
    with (
        log.open("wb") as sink,
        function_server(
            stack.function_env(WORKERS="2", THREADS="2"), stdout=sink.fileno()
        ) as server,
    ):
        deadline = time.monotonic() + 30
        while log.read_text().count('"p0_warm_up_done"') < 2:  # one line per forked worker
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        assert deliver(server).status == 200
    lines = log.read_text()
    assert '"p0_warm_up_failed"' not in lines
    warmed = [json.loads(line) for line in lines.splitlines() if '"p0_warm_up_done"' in line]
    # Each worker also opened its Firestore and Pub/Sub connections before any delivery.
    assert all("connectMs" in line and "notConnected" not in line for line in warmed), warmed
