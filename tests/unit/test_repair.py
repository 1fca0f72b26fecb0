"""The repair use case over the in-memory ports: what redrive and replay publish, mark and skip."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import pytest

from p0_receiver.core.filters import RecordFilter
from p0_receiver.usecases import repair
from p0_receiver.usecases.repair import RepairStep, StepOutcome
from tests.fakes import InMemoryAuditLog, InMemoryAuditReader, InMemoryPublisher
from tests.unit.audit_records import NOW, body, store

HOUR = timedelta(hours=1)
CUTOFF = NOW - 5 * timedelta(minutes=1)


class World:
    """An audit log, a reader over it, a topic, and every step a run reported."""

    def __init__(self) -> None:
        self.audit_log = InMemoryAuditLog()
        self.reader = InMemoryAuditReader(self.audit_log)
        self.publisher = InMemoryPublisher()
        self.steps: list[RepairStep] = []

    def redrive(self, *, limit: int | None = None) -> repair.RepairTally:
        return repair.redrive(
            self.reader,
            self.audit_log,
            self.publisher,
            received_before=CUTOFF,
            limit=limit,
            clock=lambda: NOW,
            on_step=self.steps.append,
        )

    def replay(self, wanted: RecordFilter) -> repair.RepairTally:
        return repair.replay(
            self.reader,
            self.audit_log,
            self.publisher,
            wanted,
            clock=lambda: NOW,
            on_step=self.steps.append,
        )

    def published_ids(self) -> list[str]:
        return [attributes["eventId"] for _, _, attributes in self.publisher.messages]

    def status(self, event_id: str) -> tuple[str, int]:
        record = self.audit_log.records[event_id]
        return record["publishStatus"], record["publishAttempts"]


@pytest.fixture
def world() -> World:
    return World()


def test_redrive_publishes_what_is_still_received_and_marks_it(world: World) -> None:
    old = [store(world.audit_log, body(f"R{n}"), age=(n + 1) * HOUR) for n in range(3)]
    young = store(world.audit_log, body("young"), age=timedelta(seconds=30))
    done = store(world.audit_log, body("done"), age=HOUR, published=True)

    tally = world.redrive()

    assert (tally.published, tally.failed, tally.skipped, tally.clean) == (3, 0, 0, True)
    assert world.published_ids() == old  # newest first, the catalogue's order
    for event_id, (message_id, data, attributes) in zip(old, world.publisher.messages, strict=True):
        record = world.audit_log.records[event_id]
        assert (record["publishStatus"], record["messageId"]) == ("published", message_id)
        assert data == record["body"]
        assert "replay" not in attributes
    assert world.status(young) == ("received", 0)
    assert world.status(done) == ("published", 1)
    assert [step.outcome for step in world.steps] == [StepOutcome.PUBLISHED] * 3
    assert world.redrive().published == 0  # a second run finds nothing left


def test_redrive_honours_the_limit(world: World) -> None:
    ids = [store(world.audit_log, body(f"R{n}"), age=(n + 1) * HOUR) for n in range(3)]
    assert world.redrive(limit=2).published == 2
    assert world.published_ids() == ids[:2]


def test_redrive_skips_a_record_published_meanwhile(world: World) -> None:
    first, second = (store(world.audit_log, body(f"R{n}"), age=(n + 1) * HOUR) for n in (1, 2))

    class ConcurrentRedrive(InMemoryPublisher):
        """Another redrive publishes ``second`` while this one publishes ``first``."""

        def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
            world.audit_log.mark_published(second, message_id="elsewhere", now=NOW)
            return super().publish(data, attributes)

    world.publisher = ConcurrentRedrive()
    tally = world.redrive()
    assert (tally.published, tally.skipped, tally.clean) == (1, 1, True)
    assert world.published_ids() == [first]
    assert world.steps[1] == RepairStep(second, StepOutcome.SKIPPED)


def test_redrive_refuses_a_record_edited_after_it_was_recorded(world: World) -> None:
    honest = store(world.audit_log, body("R1"), age=HOUR)
    edited = store(world.audit_log, body("R2"), age=2 * HOUR)
    world.audit_log.records[edited]["approver"] = "ciso@corp.example"

    tally = world.redrive()

    assert (tally.published, tally.failed_integrity, tally.clean) == (1, 1, False)
    assert world.published_ids() == [honest]
    assert world.status(edited) == ("received", 0)
    refused = world.steps[-1]
    assert (refused.event_id, refused.outcome) == (edited, StepOutcome.REFUSED)
    assert refused.problems == ("fields that no longer match the body: approver",)


def test_redrive_stops_after_three_failures_in_a_row(world: World) -> None:
    ids = [store(world.audit_log, body(f"R{n}"), age=(n + 1) * HOUR) for n in range(5)]
    world.publisher.unavailable = True

    tally = world.redrive()

    assert (tally.failed, tally.published, tally.stopped, tally.clean) == (3, 0, True, False)
    assert [world.status(event_id) for event_id in ids] == [("received", 1)] * 3 + [
        ("received", 0)
    ] * 2
    assert world.audit_log.records[ids[0]]["lastPublishError"] == "publish_failed: Injected"
    failure = world.steps[0].failure
    assert failure is not None
    assert (failure.reason, failure.detail) == ("publish_failed", "Injected")


def test_a_success_resets_the_run_of_failures(world: World) -> None:
    ids = [store(world.audit_log, body(f"R{n}"), age=(n + 1) * HOUR) for n in range(5)]
    outcomes = iter([False, False, True, False, False])

    class Flaky(InMemoryPublisher):
        def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
            self.unavailable = not next(outcomes)
            return super().publish(data, attributes)

    world.publisher = Flaky()
    tally = world.redrive()
    assert (tally.published, tally.failed, tally.stopped) == (1, 4, False)
    assert world.published_ids() == [ids[2]]


def test_a_publish_whose_marking_fails_is_counted_unrecorded(world: World) -> None:
    event_id = store(world.audit_log, body("R1"), age=HOUR)
    world.audit_log.fail_marking = True
    tally = world.redrive()
    assert (tally.published, tally.unrecorded, tally.clean) == (0, 1, False)
    assert world.published_ids() == [event_id]
    assert world.status(event_id) == ("received", 0)  # a rerun re-sends it, same eventId


def test_replay_resends_matching_records_and_leaves_their_state(world: World) -> None:
    r1 = [
        store(world.audit_log, body("R1", event_type=kind), age=HOUR, published=True)
        for kind in ("request-created", "request-approved")
    ]
    store(world.audit_log, body("R2"), age=HOUR, published=True)
    before = {event_id: dict(world.audit_log.records[event_id]) for event_id in r1}

    tally = world.replay(RecordFilter(equals={"objectId": "R1"}))

    assert (tally.published, tally.clean) == (2, True)
    assert sorted(world.published_ids()) == sorted(r1)
    assert all(attributes["replay"] == "true" for _, _, attributes in world.publisher.messages)
    assert {event_id: world.audit_log.records[event_id] for event_id in r1} == before


def test_replay_refuses_a_record_whose_body_was_edited(world: World) -> None:
    honest = store(world.audit_log, body("R1"), age=HOUR, published=True)
    edited = store(world.audit_log, body("R2"), age=2 * HOUR, published=True)
    record = world.audit_log.records[edited]
    record["body"] = bytes(record["body"]).replace(b"alice", b"mallory")

    tally = world.replay(RecordFilter(equals={"principal": "alice@corp.example"}))

    assert (tally.published, tally.failed_integrity, tally.clean) == (1, 1, False)
    assert world.published_ids() == [honest]
    assert world.steps[-1].problems[0] == "the body no longer hashes to bodySha256"


def test_intact_records_reports_each_refusal(world: World) -> None:
    honest = store(world.audit_log, body("R1"), age=HOUR)
    edited = store(world.audit_log, body("R2"), age=2 * HOUR)
    world.audit_log.records[edited]["reason"] = "approved by the CISO"
    records = [world.audit_log.records[event_id] for event_id in (honest, edited)]
    kept = repair.intact_records(records, world.steps.append)
    assert [record["eventId"] for record in kept] == [honest]
    assert [(step.event_id, step.outcome) for step in world.steps] == [
        (edited, StepOutcome.REFUSED)
    ]
