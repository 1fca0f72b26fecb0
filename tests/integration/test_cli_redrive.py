"""redrive and replay on the emulators: records written by the receiver during an outage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Stack
from tests.integration.cli_world import Receiver, cli, jsonl, request_body, tamper

pytestmark = pytest.mark.integration

PROD = "roles/cloudsql.client on prod-db"


def jsonl_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def now() -> datetime:
    return datetime.now(tz=UTC)


def body(object_id: str, event_type: str = "request-approved") -> bytes:
    return request_body(
        event_type,
        object_id=object_id,
        principal="alice@corp.example",
        permission=PROD,
        reason="INC-4711",
        updated=datetime(2024, 5, 1, tzinfo=UTC),
        approver="bob@corp.example",
    )


def test_redrive_publishes_what_an_outage_left_received_exactly_once(stack: Stack) -> None:
    outage = Receiver(stack, topic="deleted-topic")  # Pub/Sub refuses: records stay received
    old = [outage.deliver(body(f"R{n}"), at=now() - timedelta(minutes=10)) for n in range(3)]
    young = outage.deliver(body("R-young"), at=now() - timedelta(seconds=30))
    done = Receiver(stack).deliver(body("R-ok"), at=now() - timedelta(hours=1))
    assert [m.attributes["eventId"] for m in stack.messages()] == [done]
    before = stack.record(old[0])
    assert before is not None
    assert (before["publishStatus"], before["publishAttempts"]) == ("received", 1)
    assert before["lastPublishError"].startswith("publish_failed: NotFound")

    dry = cli(stack, "redrive", "--dry-run", "--format", "jsonl", now=now())
    assert sorted(r["eventId"] for r in jsonl(dry)) == sorted(old)
    assert "dry run: 3 records received before" in dry.stderr
    assert stack.messages() == []

    result = cli(stack, "redrive", now=now())  # default --min-age 5m spares the young one
    assert result.exit_code == 0, result.output
    assert "redrive: 3 published, 0 failed" in result.stderr
    messages = {m.attributes["eventId"]: m for m in stack.messages()}
    assert sorted(messages) == sorted(old)
    for event_id in old:
        record = stack.record(event_id)
        assert record is not None
        assert record["publishStatus"] == "published"
        assert record["messageId"] == messages[event_id].message_id
        assert record["publishAttempts"] == 2
        assert messages[event_id].data == record["body"]
        assert "replay" not in messages[event_id].attributes
    young_record = stack.record(young)
    assert young_record is not None
    assert young_record["publishStatus"] == "received"

    again = cli(stack, "redrive", now=now())
    assert again.exit_code == 0
    assert "redrive: 0 published, 0 failed" in again.stderr
    assert stack.messages() == []

    later = cli(stack, "redrive", "--min-age", "10s", now=now())
    assert "redrive: 1 published" in later.stderr
    assert [m.attributes["eventId"] for m in stack.messages()] == [young]


def test_redrive_while_pubsub_is_still_down_marks_nothing(stack: Stack) -> None:
    outage = Receiver(stack, topic="deleted-topic")
    event_ids = [outage.deliver(body(f"R{n}"), at=now() - timedelta(hours=1)) for n in range(4)]
    result = cli(stack, "redrive", env={"PUBSUB_TOPIC": "deleted-topic"}, now=now())
    assert result.exit_code == 1
    assert "stopping after 3 failures in a row" in result.stderr
    assert "redrive: 0 published, 3 failed" in result.stderr
    assert "Traceback" not in result.output
    records = [stack.record(event_id) for event_id in event_ids]
    assert all(r is not None and r["publishStatus"] == "received" for r in records)
    assert sorted(r["publishAttempts"] for r in records if r) == [1, 2, 2, 2]


def test_replay_republishes_with_replay_attribute_and_keeps_state(stack: Stack) -> None:
    receiver = Receiver(stack)
    r1 = [
        receiver.deliver(body("R1", kind), at=now())
        for kind in ("request-created", "request-approved")
    ]
    other = receiver.deliver(body("R2"), at=now())
    originals = {m.attributes["eventId"]: m for m in stack.messages()}
    assert set(originals) == {*r1, other}
    before = {event_id: stack.record(event_id) for event_id in r1}

    dry = cli(stack, "replay", "--object-id", "R1", "--dry-run", "--format", "jsonl")
    assert sorted(r["eventId"] for r in jsonl(dry)) == sorted(r1)
    assert stack.messages() == []

    result = cli(stack, "replay", "--object-id", "R1")
    assert result.exit_code == 0, result.output
    assert "replay: 2 replayed, 0 failed (objectId=R1)" in result.stderr
    replayed = stack.messages()
    assert sorted(m.attributes["eventId"] for m in replayed) == sorted(r1)
    for message in replayed:
        original = originals[message.attributes["eventId"]]
        assert message.attributes == {**original.attributes, "replay": "true"}
        assert message.data == original.data
        assert message.message_id != original.message_id
    assert {event_id: stack.record(event_id) for event_id in r1} == before


def test_redrive_publishes_nothing_for_a_record_edited_after_it_was_recorded(
    stack: Stack,
) -> None:
    outage = Receiver(stack, topic="deleted-topic")
    honest, edited = (outage.deliver(body(f"R{n}"), at=now() - timedelta(hours=1)) for n in (1, 2))
    tamper(stack, edited, approver="ciso@corp.example")

    dry = cli(stack, "redrive", "--dry-run", "--format", "jsonl", now=now())
    assert dry.exit_code == 1
    assert [r["eventId"] for r in jsonl_lines(dry.stdout)] == [honest]
    assert f"skipped {edited}: fields that no longer match the body: approver" in dry.stderr

    result = cli(stack, "redrive", now=now())
    assert result.exit_code == 1
    assert f"skipped {edited}: fields that no longer match the body: approver" in result.stderr
    assert "redrive: 1 published, 1 failed the integrity check (skipped), 0 failed" in (
        result.stderr
    )
    assert [m.attributes["eventId"] for m in stack.messages()] == [honest]
    record = stack.record(edited)
    assert record is not None
    assert (record["publishStatus"], record["publishAttempts"]) == ("received", 1)


def test_replay_publishes_nothing_for_a_record_whose_body_was_edited(stack: Stack) -> None:
    receiver = Receiver(stack)
    honest = receiver.deliver(body("R1"), at=now())
    edited = receiver.deliver(body("R2"), at=now())
    stack.messages()
    original = stack.record(edited)
    assert original is not None
    tamper(stack, edited, body=bytes(original["body"]).replace(b"alice", b"mallory"))

    dry = cli(
        stack, "replay", "--principal", "alice@corp.example", "--dry-run", "--format", "jsonl"
    )
    assert dry.exit_code == 1
    assert [r["eventId"] for r in jsonl_lines(dry.stdout)] == [honest]
    assert "dry run: 1 records would be replayed" in dry.stderr
    assert "1 failed the integrity check" in dry.stderr

    result = cli(stack, "replay", "--principal", "alice@corp.example")
    assert result.exit_code == 1
    assert f"skipped {edited}: the body no longer hashes to bodySha256" in result.stderr
    assert "replay: 1 replayed, 1 failed the integrity check (skipped), 0 failed" in (result.stderr)
    assert [m.attributes["eventId"] for m in stack.messages()] == [honest]


def test_large_replay_needs_yes(stack: Stack) -> None:
    receiver = Receiver(stack)
    for n in range(11):
        receiver.deliver(body(f"R{n}"), at=now())
    stack.messages()
    refused = cli(stack, "replay", "--principal", "alice@corp.example")
    assert refused.exit_code == 2
    assert "more than 10 records match (principal=alice@corp.example); pass --yes" in refused.stderr
    assert stack.messages() == []
    assert len(jsonl(cli(stack, "replay", "--dry-run", "--format", "jsonl"))) == 11
    accepted = cli(stack, "replay", "--principal", "alice@corp.example", "--yes")
    assert accepted.exit_code == 0
    assert (
        len(
            stack.messages(),
        )
        == 11
    )


def test_publishing_commands_need_a_topic(stack: Stack) -> None:
    for command in (("redrive",), ("replay", "--object-id", "R1")):
        result = cli(stack, *command, env={"PUBSUB_TOPIC": ""})
        assert result.exit_code == 2
        assert "configuration: PUBSUB_TOPIC: not set" in result.stderr
