"""Nothing lost without a human, end to end: real functions-framework servers for both targets
(``receive`` and ``redrive``), the operator CLI on the real adapters, both emulators.

A refused authentic body is kept and released through the normal delivery path; records a
Pub/Sub outage left ``received`` are published by one POST to the redrive target, with no CLI.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

from p0_receiver.core import events
from p0_receiver.devtools.emulators import free_port
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.devtools.simulator import DeliveryResponse, post_delivery
from p0_receiver.devtools.stack import FunctionServer, function_server
from tests.conftest import Stack
from tests.faults import switchable_proxy
from tests.integration.cli_world import cli
from tests.support import keypair, token

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def body(n: int, **data: Any) -> bytes:
    document = json.loads(PREAPPROVAL_CREATED)
    merged = {key: value for key, value in {**document["data"], **data}.items() if value}
    return json.dumps({**document, "data": {**merged, "id": f"lost-{n}"}}).encode()


def drifted(n: int) -> bytes:
    """P0 renamed a documented field: the deployed model refuses it (422)."""
    document = json.loads(body(n))
    document["data"]["kind"] = document["data"].pop("type")
    return json.dumps(document).encode()


class _RelaxedPreapproval(events._P0Model):
    """The upgrade that understands P0's new shape (any data parses)."""


def p0_token(*, issued: int | None = None) -> str:
    issued = int(time.time()) if issued is None else issued
    return token(keypair("ES256"), iat=issued, exp=issued + 300)


def post_empty(url: str, method: str = "POST") -> tuple[int, dict[str, Any]]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        connection.request(method, "/", headers={"Content-Length": "0"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


@pytest.fixture
def served(stack: Stack) -> Iterator[tuple[Stack, FunctionServer]]:
    with function_server(stack.function_env()) as server:
        yield stack, server


def test_a_drifted_body_is_422_kept_then_released_after_the_upgrade(
    served: tuple[Stack, FunctionServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, server = served
    answer = post_delivery(server.url, drifted(1), token=token())
    assert (answer.status, answer.json()["error"]["code"]) == (422, "schema_violation")
    (entry,) = stack.quarantined()
    held = entry["quarantineId"]
    assert entry["reason"] == "schema_violation"
    assert stack.records() == []

    listed = cli(stack, "quarantine", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert [(e["quarantineId"], e["status"]) for e in json.loads(listed.stdout)] == [(held, "held")]
    raw = cli(stack, "quarantine", "show", held, "--raw")
    assert raw.stdout_bytes == drifted(1)

    # The code deployed now still refuses it: the CLI says which flag would keep it anyway.
    refused = cli(stack, "quarantine", "release", held)
    assert refused.exit_code == 2
    assert "--as-unrecognised" in refused.stderr
    assert stack.records() == []

    monkeypatch.setattr(events, "PreapprovalCreated", _RelaxedPreapproval)  # the upgrade
    released = cli(stack, "quarantine", "release", held)
    assert released.exit_code == 0, released.output
    (record,) = stack.records()
    assert record["body"] == drifted(1)
    assert record["shapeCheck"] == "validated"
    assert record["releasedFrom"]["quarantineId"] == held
    assert record["releasedFrom"]["reason"] == "schema_violation"
    assert record["publishStatus"] == "published"
    assert record["token"]["fingerprint"] == entry["tokenFingerprint"]
    assert record["token"]["claims"] == json.loads(entry["token"]["claims"])
    (message,) = stack.messages()
    assert (message.data, message.attributes["released"]) == (drifted(1), "true")
    shown = cli(stack, "audit", "show", record["eventId"])
    assert shown.exit_code == 0, shown.output  # the integrity check passes

    again = cli(stack, "quarantine", "release", held)
    assert (again.exit_code, "already recorded" in again.stderr) == (0, True)
    assert len(stack.records()) == 1
    assert stack.messages() == []

    assert cli(stack, "quarantine", "discard", held).exit_code == 2
    assert cli(stack, "quarantine", "discard", held, "--yes").exit_code == 0
    assert stack.quarantined() == []


def test_a_body_that_still_does_not_parse_is_released_as_unrecognised_and_stays_intact(
    served: tuple[Stack, FunctionServer],
) -> None:
    stack, server = served
    assert post_delivery(server.url, drifted(2), token=token()).status == 422
    ((entry),) = stack.quarantined()
    released = cli(stack, "quarantine", "release", entry["quarantineId"], "--as-unrecognised")
    assert released.exit_code == 0, released.output
    (record,) = stack.records()
    assert record["shapeCheck"] == "unrecognised"
    shown = cli(stack, "audit", "show", record["eventId"], "--format", "json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["integrity"]["ok"] is True
    # The redrive and replay publish only records that pass the integrity check: this one does.
    replayed = cli(stack, "replay", "--object-id", "lost-2", now=datetime.now(tz=UTC))
    assert replayed.exit_code == 0, replayed.output


def test_a_reused_tokens_body_is_kept_and_released_only_with_accept_reuse(stack: Stack) -> None:
    env = stack.function_env(
        P0_TOKEN_REUSE="reject", P0_PUBLIC_KEYS=keypair("ES256").public_pem.decode()
    )
    captured = p0_token()
    with function_server(env) as server:
        assert post_delivery(server.url, body(1), token=captured).status == 200
        replay = post_delivery(server.url, body(2), token=captured)
    assert (replay.status, replay.json()["error"]["reason"]) == (401, "token_replayed")
    (entry,) = stack.quarantined()
    assert entry["reason"] == "token_reused"
    first_event_id = entry["details"]["firstEventId"]
    stack.messages()  # the first body's message

    refused = cli(stack, "quarantine", "release", entry["quarantineId"])
    assert (refused.exit_code, "--accept-reuse" in refused.stderr) == (2, True)
    assert len(stack.records()) == 1

    released = cli(stack, "quarantine", "release", entry["quarantineId"], "--accept-reuse")
    assert released.exit_code == 0, released.output
    (record,) = [r for r in stack.records() if r["eventId"] != first_event_id]
    assert record["tokenReuse"] == {
        "firstEventId": first_event_id,
        "fingerprint": entry["tokenFingerprint"],
    }
    assert record["releasedFrom"]["reason"] == "token_reused"
    (message,) = stack.messages()
    assert (message.attributes["tokenReuse"], message.attributes["released"]) == ("true", "true")


def _deliver_all(server: FunctionServer, bodies: list[bytes]) -> list[DeliveryResponse]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda b: post_delivery(server.url, b, token=token()), bodies))


def test_pubsub_cut_while_deliveries_arrive_then_one_redrive_post_publishes_the_rest(
    stack: Stack,
) -> None:
    before, during, after = (
        [body(n) for n in range(k, k + size)] for k, size in ((0, 10), (100, 20), (200, 10))
    )
    with switchable_proxy(stack.emulator_env["PUBSUB_EMULATOR_HOST"]) as pubsub_link:
        pubsub_link.up()
        receive_env = stack.function_env(
            PUBSUB_EMULATOR_HOST=pubsub_link.address, PUBSUB_PUBLISH_TIMEOUT_SECONDS="1"
        )
        with function_server(receive_env) as receiver:
            answers = _deliver_all(receiver, before)
            pubsub_link.down()
            answers += _deliver_all(receiver, during)
            pubsub_link.up()
            # Deliveries keep arriving while the receiver's channel reconnects.
            answers += _deliver_all(receiver, after)
        statuses = [a.status for a in answers]
        left = [r for r in stack.records() if r["publishStatus"] == "received"]
        assert len(stack.records()) == len(before) + len(during) + len(after)
        assert statuses.count(503) == len(left) >= len(during)
        published_by_receiver = {m.attributes["eventId"] for m in stack.messages()}

        redrive_env = {
            **stack.emulator_env,
            "GOOGLE_CLOUD_PROJECT": stack.project,
            "PUBSUB_TOPIC": stack.topic,
            "PUBSUB_EMULATOR_HOST": pubsub_link.address,
            "REDRIVE_MIN_AGE_SECONDS": "0",
        }
        with function_server(redrive_env, target="redrive") as redriver:
            assert post_empty(redriver.url, "GET")[0] == 405
            status, counts = post_empty(redriver.url)
    assert status == 200
    assert (counts["published"], counts["failed"], counts["skipped"]) == (len(left), 0, 0)
    records = stack.records()
    assert {r["publishStatus"] for r in records} == {"published"}
    redriven = {m.attributes["eventId"] for m in stack.messages()}
    assert redriven == {r["eventId"] for r in left}
    assert published_by_receiver | redriven == {r["eventId"] for r in records}
    # The figures the issue asks for (run with -s to see them).
    print(
        f"\noutage measurement: {len(records)} deliveries, {statuses.count(200)} answered 200, "
        f"{statuses.count(503)} answered 503 and left 'received'; "
        f"one POST to the redrive target published {counts['published']}"
    )


def test_the_redrive_target_answers_503_when_firestore_is_unreachable(stack: Stack) -> None:
    env = {
        **stack.emulator_env,
        "GOOGLE_CLOUD_PROJECT": stack.project,
        "PUBSUB_TOPIC": stack.topic,
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{free_port()}",
        "FIRESTORE_TIMEOUT_SECONDS": "1",
    }
    with function_server(env, target="redrive") as redriver:
        status, answer = post_empty(redriver.url)
    assert status == 503
    assert answer["error"]["code"] == "unavailable"
    assert answer["error"]["reason"] == "audit_unavailable"


def test_the_scheduler_and_an_operator_overlapping_leave_everything_published_at_most_twice(
    stack: Stack,
) -> None:
    with switchable_proxy(stack.emulator_env["PUBSUB_EMULATOR_HOST"]) as cut:
        env = stack.function_env(
            PUBSUB_EMULATOR_HOST=cut.address, PUBSUB_PUBLISH_TIMEOUT_SECONDS="1"
        )
        with function_server(env) as receiver:
            assert {a.status for a in _deliver_all(receiver, [body(n) for n in range(12)])} == {503}
    waiting = {r["eventId"] for r in stack.records()}
    redrive_env = {
        **stack.emulator_env,
        "GOOGLE_CLOUD_PROJECT": stack.project,
        "PUBSUB_TOPIC": stack.topic,
        "REDRIVE_MIN_AGE_SECONDS": "0",
    }
    with function_server(redrive_env, target="redrive") as redriver, ThreadPoolExecutor(2) as pool:
        scheduled = pool.submit(post_empty, redriver.url)
        operator = pool.submit(cli, stack, "redrive", "--min-age", "0s", now=datetime.now(tz=UTC))
        status, _ = scheduled.result()
        by_hand = operator.result()
    assert status == 200
    assert by_hand.exit_code == 0, by_hand.output
    assert {r["publishStatus"] for r in stack.records()} == {"published"}
    sent = [m.attributes["eventId"] for m in stack.messages()]
    assert set(sent) == waiting
    assert all(sent.count(event_id) <= 2 for event_id in waiting)


def test_two_operators_release_one_reused_body_at_once_then_p0_redelivers_it(
    stack: Stack,
) -> None:
    """Two real `p0-receiver quarantine release` processes race on one entry: one record, one
    message; then P0 sends the same body under the same token again: a duplicate (200), and the
    entry stays released."""
    env = stack.function_env(
        P0_TOKEN_REUSE="reject", P0_PUBLIC_KEYS=keypair("ES256").public_pem.decode()
    )
    captured = p0_token()
    with function_server(env) as server:
        assert post_delivery(server.url, body(1), token=captured).status == 200
        assert post_delivery(server.url, body(2), token=captured).status == 401
        (entry,) = stack.quarantined()
        stack.messages()  # the first body's message
        operator_env = {
            **os.environ,
            **stack.emulator_env,
            "GOOGLE_CLOUD_PROJECT": stack.project,
            "PUBSUB_TOPIC": stack.topic,
        }
        command = [sys.executable, "-m", "p0_receiver", "quarantine", "release"]
        releases = [
            subprocess.Popen(
                [*command, entry["quarantineId"], "--accept-reuse"],
                env=operator_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=120) for process in releases]
        assert [process.returncode for process in releases] == [0, 0], outputs
        said = " ".join(stderr for _, stderr in outputs)
        assert said.count("recorded and published") == 1, said
        assert "token ledger: P0 delivering this body again under its token is a duplicate" in said

        (message,) = stack.messages()  # one message for the released body, whoever won
        assert message.attributes["released"] == "true"
        assert len(stack.records()) == 2

        redelivered = post_delivery(server.url, body(2), token=captured)
    assert redelivered.status == 200, redelivered.json()
    assert redelivered.json()["status"] == "duplicate"
    assert stack.messages() == []  # already published: the duplicate sends nothing again
    (after,) = stack.quarantined()
    assert (after["count"], after["releasedEventId"]) == (1, message.attributes["eventId"])
