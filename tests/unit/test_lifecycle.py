"""``dev send --lifecycle``'s story: one request created, approved and expired, sent out of order,
and read back in P0's order through the in-memory audit log."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from p0_receiver.core.events import parse_notification
from p0_receiver.core.record import build_audit_record
from p0_receiver.devtools.samples import new_object_id, request_lifecycle
from p0_receiver.devtools.simulator import DeliveryResponse
from p0_receiver.entrypoints.cli import main
from p0_receiver.entrypoints.cli.dev import SentStory, lifecycle_lines
from p0_receiver.usecases.audit import views
from tests.fakes import InMemoryAuditLog, InMemoryAuditReader
from tests.unit.audit_records import NOW, TOKEN

IN_P0_ORDER = ["request-created", "request-approved", "request-expired"]


def test_the_story_is_one_request_sent_out_of_p0s_order() -> None:
    story = request_lifecycle("Ab3dE5gH7jK9mN1pQ3sT", now=NOW)
    assert [d.event_type for d in story] == [
        "request-approved",  # the approval arrives before the creation
        "request-created",
        "request-expired",
    ]
    by_type = {d.event_type: d for d in story}
    times = [by_type[event_type].occurred_at for event_type in IN_P0_ORDER]
    assert times == sorted(times)
    assert len(set(times)) == 3
    assert times[-1] <= NOW  # an expiry is reported once it happened
    for delivery in story:
        notification = parse_notification(delivery.body)
        record = build_audit_record(notification, TOKEN, received_at=NOW, retention_days=30)
        assert notification.event_type == delivery.event_type
        assert record["objectId"] == "Ab3dE5gH7jK9mN1pQ3sT"
        assert record["shapeCheck"] == "lenient"
        # the receiver reads P0's time from the body, not from the arrival
        assert (record["occurredAt"], record["occurredAtSource"]) == (delivery.occurred_at, "p0")
    approved = json.loads(by_type["request-approved"].body)["data"]
    assert approved["status"] == "APPROVED"
    assert approved["approvalDetails"]["email"] == "john.smith@p0.dev"


def test_the_timeline_puts_the_story_back_in_p0s_order() -> None:
    audit_log = InMemoryAuditLog()
    for arrival, delivery in enumerate(request_lifecycle("R1", now=NOW)):
        record = build_audit_record(
            parse_notification(delivery.body),
            TOKEN,
            received_at=NOW + timedelta(seconds=arrival),
            retention_days=30,
        )
        assert audit_log.create(record)
    timeline = list(views.timeline(InMemoryAuditReader(audit_log), "R1"))
    assert [record["eventType"] for record in timeline] == IN_P0_ORDER
    assert [record["requestStatus"] for record in timeline] == [
        "PENDING_APPROVAL",
        "APPROVED",
        "EXPIRED",
    ]
    arrivals = [record["receivedAt"] for record in timeline]
    assert arrivals != sorted(arrivals)


def test_every_story_is_a_new_request() -> None:
    ids = {new_object_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 20 and i.isascii() and i.isalnum() for i in ids)


def test_what_was_sent_is_printed_with_the_timeline_command() -> None:
    story = request_lifecycle("R1", now=NOW)
    answers = [
        DeliveryResponse(200, {}, b'{"eventId":"aa"}'),
        DeliveryResponse(200, {}, b'{"eventId":"bb"}'),
        DeliveryResponse(401, {}, b'{"error":"invalid_token"}'),
    ]
    sent = SentStory("R1", tuple(zip(story, answers, strict=True)))
    assert not sent.accepted
    lines = lifecycle_lines(sent)
    assert lines[0] == "sent the story of request R1, in this arrival order:"
    assert lines[1].split() == [
        "request-approved",
        "P0",
        "time",
        "2024-05-10T10:59:00.000Z",
        "HTTP",
        "200",
        "eventId",
        "aa",
    ]
    assert lines[3].split()[-3:] == ["401", "eventId", "-"]
    assert lines[4].strip() == '{"error":"invalid_token"}'
    assert lines[-1].split()[-4:] == ["p0_receiver", "audit", "timeline", "R1"]


@pytest.mark.parametrize("option", ["--sample", "--file"])
def test_lifecycle_is_its_own_deliveries(option: str, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b"{}")
    value = {"--sample": "request-approved", "--file": str(body)}[option]
    result = CliRunner().invoke(
        main, ["dev", "send", "http://127.0.0.1:9/", "--lifecycle", option, value]
    )
    assert result.exit_code == 2, result.output
    assert "--lifecycle sends its own deliveries" in result.stderr
