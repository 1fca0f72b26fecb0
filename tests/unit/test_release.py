"""Release: a quarantined body becomes an audit record through the delivery path, once.

The bodies are refused by the real delivery service over the in-memory ports, then released
by the use case over the same ports; every refusal of a release has its own test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from p0_receiver.core import events
from p0_receiver.core.errors import (
    ReleaseRefusedError,
    SchemaViolationError,
    TokenReplayError,
    UnknownEventTypeError,
)
from p0_receiver.core.events import ShapeCheck
from p0_receiver.core.integrity import check_integrity
from p0_receiver.core.quarantine import QuarantineField
from p0_receiver.settings import TokenReusePolicy
from p0_receiver.usecases import repair
from p0_receiver.usecases.release import (
    ReleaseOutcome,
    ReleaseRequest,
    ReleaseStatus,
    SideState,
    release,
)
from tests.fakes import InMemoryAuditReader
from tests.unit.test_quarantine import DRIFTED, NOW
from tests.unit.test_quarantine import World as RefusingWorld
from tests.unit.test_token_reuse import Receiver, body

RELEASED_AT = NOW + timedelta(hours=2)


class _RelaxedPreapproval(events._P0Model):
    """What an upgrade that understands P0's new shape would parse (any data)."""


class World(RefusingWorld):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.reader = InMemoryAuditReader(self.audit)

    def refuse(self, payload: bytes) -> str:
        with pytest.raises(SchemaViolationError) as caught:
            self.deliver(payload)
        assert caught.value.quarantine is not None
        return caught.value.quarantine.quarantine_id

    def release(self, quarantine_id: str, **flags: bool) -> ReleaseOutcome:
        return release(
            ReleaseRequest(quarantine_id, **flags),
            self.quarantine,
            self.reader,
            self.audit,
            self.publisher,
            self.ledger,
            retention_days=30,
            now=RELEASED_AT,
        )


def test_a_drifted_body_is_refused_until_the_model_understands_it() -> None:
    world = World()
    held = world.refuse(DRIFTED)
    with pytest.raises(ReleaseRefusedError) as caught:
        world.release(held)
    assert caught.value.needs_flag == "--as-unrecognised"
    assert "data.type: Field required" in str(caught.value)
    assert world.audit.records == {}
    assert world.publisher.messages == []
    assert QuarantineField.RELEASED_EVENT_ID not in world.quarantine.entries[held]


def test_after_an_upgrade_the_body_is_recorded_and_published_as_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World()
    held = world.refuse(DRIFTED)
    monkeypatch.setattr(events, "PreapprovalCreated", _RelaxedPreapproval)  # the upgrade
    entry = world.quarantine.entries[held]
    outcome = world.release(held)
    assert (outcome.status, outcome.shape) == (ReleaseStatus.RELEASED, ShapeCheck.VALIDATED)
    record = world.audit.records[outcome.event_id]
    assert record["releasedFrom"] == {
        "quarantineId": held,
        "reason": "schema_violation",
        "releasedAt": RELEASED_AT,
    }
    assert record["body"] == DRIFTED
    assert record["receivedAt"] == NOW  # when P0 delivered it, not when it was released
    # The token as the quarantine kept it (header and claims were JSON text there).
    kept = entry[QuarantineField.TOKEN]
    assert record["token"] == {
        "header": json.loads(kept["header"]),
        "claims": json.loads(kept["claims"]),
        "fingerprint": kept["fingerprint"],
    }
    assert record["publishStatus"] == "published"
    ((message_id, data, attributes),) = world.publisher.messages
    assert (data, attributes["released"], attributes["eventId"]) == (
        DRIFTED,
        "true",
        outcome.event_id,
    )
    assert record["messageId"] == message_id == outcome.message_id
    assert check_integrity(record).ok
    assert world.quarantine.entries[held][QuarantineField.RELEASED_EVENT_ID] == outcome.event_id


def test_as_unrecognised_keeps_a_body_that_still_does_not_parse_and_it_stays_intact() -> None:
    world = World()
    held = world.refuse(DRIFTED)
    outcome = world.release(held, as_unrecognised=True)
    assert (outcome.status, outcome.shape) == (ReleaseStatus.RELEASED, ShapeCheck.UNRECOGNISED)
    record = world.audit.records[outcome.event_id]
    assert record["shapeCheck"] == "unrecognised"
    assert check_integrity(record).ok
    # The integrity check reads it as released: the same record without the mark fails it.
    unmarked = {k: v for k, v in record.items() if k != "releasedFrom"}
    assert not check_integrity(unmarked).ok
    # ...and a tampered derived field is still caught on a released record.
    assert not check_integrity({**record, "objectId": "someone-else"}).ok


def test_releasing_twice_creates_one_record_and_one_message() -> None:
    world = World()
    held = world.refuse(DRIFTED)
    first = world.release(held, as_unrecognised=True)
    again = world.release(held, as_unrecognised=True)
    assert again.status is ReleaseStatus.ALREADY_RECORDED
    assert again.event_id == first.event_id
    assert len(world.audit.records) == 1
    assert len(world.publisher.messages) == 1


def test_a_body_p0_already_delivered_after_the_upgrade_gets_no_second_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World()
    held = world.refuse(DRIFTED)
    monkeypatch.setattr(events, "PreapprovalCreated", _RelaxedPreapproval)  # the upgrade
    world.deliver(DRIFTED)  # P0's retry, accepted by the normal path
    (recorded,) = world.audit.records.values()
    outcome = world.release(held)
    assert outcome.status is ReleaseStatus.ALREADY_RECORDED
    assert outcome.event_id == recorded["eventId"]
    assert len(world.audit.records) == 1
    assert len(world.publisher.messages) == 1
    assert "releasedFrom" not in world.audit.records[outcome.event_id]
    assert world.quarantine.entries[held][QuarantineField.RELEASED_EVENT_ID] == outcome.event_id


def test_a_failed_publish_leaves_the_released_record_for_the_redrive() -> None:
    world = World()
    held = world.refuse(DRIFTED)
    world.publisher.unavailable = True
    outcome = world.release(held, as_unrecognised=True)
    assert outcome.status is ReleaseStatus.UNPUBLISHED
    assert outcome.failure is not None
    assert world.audit.records[outcome.event_id]["publishStatus"] == "received"
    world.publisher.unavailable = False
    tally = repair.redrive(
        world.reader,
        world.audit,
        world.publisher,
        received_before=RELEASED_AT,
        clock=lambda: RELEASED_AT,
    )
    assert (tally.published, tally.failed_integrity) == (1, 0)
    ((_, _, attributes),) = world.publisher.messages
    assert attributes["released"] == "true"


def test_strict_modes_unknown_type_is_released_as_unrecognised_without_a_flag() -> None:
    world = World(strict=True)
    unknown = json.dumps({"id": "n", "name": "x", "eventType": "brand-new", "data": {}}).encode()
    with pytest.raises(UnknownEventTypeError) as caught:
        world.deliver(unknown)
    assert caught.value.quarantine is not None
    outcome = world.release(caught.value.quarantine.quarantine_id)
    assert (outcome.status, outcome.shape) == (ReleaseStatus.RELEASED, ShapeCheck.UNRECOGNISED)
    assert check_integrity(world.audit.records[outcome.event_id]).ok


def test_an_envelope_that_does_not_match_is_refused_even_as_unrecognised() -> None:
    world = World()
    no_name = json.dumps({"id": "n", "eventType": "preapproval-created", "data": {}}).encode()
    held = world.refuse(no_name)
    with pytest.raises(ReleaseRefusedError) as caught:
        world.release(held, as_unrecognised=True)
    assert caught.value.needs_flag is None
    assert "name: Field required" in str(caught.value)
    assert world.audit.records == {}


def test_a_missing_entry_is_refused() -> None:
    with pytest.raises(ReleaseRefusedError, match="no quarantine entry"):
        World().release("0" * 64)


def test_an_entry_whose_body_was_edited_is_refused() -> None:
    world = World()
    held = world.refuse(DRIFTED)
    world.quarantine.entries[held]["body"] = DRIFTED.replace(b"x", b"y")
    with pytest.raises(ReleaseRefusedError, match="no longer hashes"):
        world.release(held, as_unrecognised=True)
    assert world.audit.records == {}


def test_an_entry_whose_token_is_unreadable_is_refused() -> None:
    world = World()
    held = world.refuse(DRIFTED)
    world.quarantine.entries[held]["token"]["claims"] = "{not json"
    with pytest.raises(ReleaseRefusedError, match="token header and claims"):
        world.release(held, as_unrecognised=True)
    assert world.audit.records == {}


def _replayed(receiver: Receiver) -> str:
    raw = receiver.p0_token()
    receiver.deliver(raw, body(1))
    with pytest.raises(TokenReplayError) as caught:
        receiver.deliver(raw, body(2), after_seconds=60)  # outside the burst window
    assert caught.value.quarantine is not None
    return caught.value.quarantine.quarantine_id


def _release_replayed(receiver: Receiver, held: str, **flags: bool) -> ReleaseOutcome:
    return release(
        ReleaseRequest(held, **flags),
        receiver.quarantine,
        InMemoryAuditReader(receiver.audit),
        receiver.audit,
        receiver.publisher,
        receiver.ledger,
        retention_days=30,
        now=RELEASED_AT,
    )


def test_a_reused_tokens_body_needs_accept_reuse_and_is_flagged_when_released() -> None:
    receiver = Receiver("RS256", TokenReusePolicy.BURST)
    held = _replayed(receiver)
    with pytest.raises(ReleaseRefusedError) as caught:
        _release_replayed(receiver, held)
    assert caught.value.needs_flag == "--accept-reuse"
    assert len(receiver.audit.records) == 1
    outcome = _release_replayed(receiver, held, accept_reuse=True)
    assert outcome.status is ReleaseStatus.RELEASED
    record = receiver.audit.records[outcome.event_id]
    first_event_id = next(k for k in receiver.audit.records if k != outcome.event_id)
    assert record["tokenReuse"] == {
        "firstEventId": first_event_id,
        "fingerprint": record["token"]["fingerprint"],
    }
    assert record["releasedFrom"]["reason"] == "token_reused"
    attributes = receiver.publisher.messages[-1][2]
    assert (attributes["tokenReuse"], attributes["released"]) == ("true", "true")
    assert check_integrity(record).ok


# --- Release, redelivery and redrive agree with each other ---------------------------------


def _published_world() -> tuple[World, str, str]:
    """A body refused, then recorded by a first release; the record left ``received``."""
    world = World()
    held = world.refuse(DRIFTED)
    world.publisher.unavailable = True
    first = world.release(held, as_unrecognised=True)
    world.publisher.unavailable = False
    assert first.status is ReleaseStatus.UNPUBLISHED
    return world, held, first.event_id


def test_a_release_refuses_an_existing_record_that_fails_the_integrity_check() -> None:
    world, held, event_id = _published_world()
    world.audit.records[event_id]["objectId"] = "someone-else"  # edited behind our back
    with pytest.raises(ReleaseRefusedError, match="integrity check") as caught:
        world.release(held, as_unrecognised=True)
    assert "objectId" in str(caught.value)
    assert world.publisher.messages == []
    assert world.audit.records[event_id]["publishStatus"] == "received"


def test_the_second_of_two_releases_publishes_nothing_and_leaves_the_record_to_the_redrive() -> (
    None
):
    # Two operators at once: both read the entry; only one create() lands. The other meets the
    # record "received" (the winner has not marked it yet) and must not publish it a second time.
    world, held, event_id = _published_world()
    outcome = world.release(held, as_unrecognised=True)
    assert outcome.event_id == event_id
    assert outcome.status is ReleaseStatus.ALREADY_RECORDED
    assert (outcome.message_id, outcome.failure) == (None, None)
    assert outcome.record_status == "received"
    assert world.publisher.messages == []
    # The scheduled redrive publishes it, once.
    tally = repair.redrive(
        world.reader,
        world.audit,
        world.publisher,
        received_before=RELEASED_AT,
        clock=lambda: RELEASED_AT,
    )
    assert tally.published == 1
    assert len(world.publisher.messages) == 1


def test_an_entry_that_vanishes_mid_release_still_reports_the_record_it_made() -> None:
    world = World()
    held = world.refuse(DRIFTED)
    entries = world.quarantine.entries
    real_get = world.quarantine.get

    def get_then_discard(quarantine_id: str) -> dict[str, Any] | None:
        entry = real_get(quarantine_id)
        entries.pop(quarantine_id)  # another operator discards it (or its TTL runs out) now
        return entry

    world.quarantine.get = get_then_discard  # type: ignore[method-assign]
    outcome = world.release(held, as_unrecognised=True)
    assert outcome.status is ReleaseStatus.RELEASED
    assert outcome.entry is SideState.GONE
    assert world.audit.records[outcome.event_id]["publishStatus"] == "published"
    assert len(world.publisher.messages) == 1


def test_after_releasing_a_reused_tokens_body_its_redelivery_is_a_duplicate() -> None:
    receiver = Receiver("RS256", TokenReusePolicy.BURST)
    raw = receiver.p0_token()
    receiver.deliver(raw, body(1))
    with pytest.raises(TokenReplayError) as caught:
        receiver.deliver(raw, body(2), after_seconds=60)
    assert caught.value.quarantine is not None
    held = caught.value.quarantine.quarantine_id
    outcome = _release_replayed(receiver, held, accept_reuse=True)
    assert outcome.ledger is SideState.DONE
    messages = len(receiver.publisher.messages)
    # P0 delivers the same body under the same token again: accepted as a duplicate.
    delivered = receiver.deliver(raw, body(2), after_seconds=90)
    assert delivered.status.value == "duplicate"
    assert len(receiver.publisher.messages) == messages  # already published: nothing re-sent
    assert receiver.quarantine.entries[held][QuarantineField.RELEASED_EVENT_ID] == outcome.event_id
    assert receiver.quarantine.entries[held][QuarantineField.COUNT] == 1


def test_a_quarantine_that_stops_answering_after_the_record_is_made_is_reported_not_raised() -> (
    None
):
    world = World()
    held = world.refuse(DRIFTED)
    real_get = world.quarantine.get

    def get_then_fail(quarantine_id: str) -> dict[str, Any] | None:
        entry = real_get(quarantine_id)
        world.quarantine.unavailable = True  # Firestore stops answering the entry's update
        return entry

    world.quarantine.get = get_then_fail  # type: ignore[method-assign]
    outcome = world.release(held, as_unrecognised=True)
    assert (outcome.status, outcome.entry) == (ReleaseStatus.RELEASED, SideState.UNREACHABLE)
    assert world.audit.records[outcome.event_id]["publishStatus"] == "published"


def test_a_ledger_that_no_longer_holds_the_token_is_reported_as_gone() -> None:
    receiver = Receiver("RS256", TokenReusePolicy.BURST)
    held = _replayed(receiver)
    receiver.ledger.entries.clear()  # the token's ledger entry expired (TTL)
    outcome = _release_replayed(receiver, held, accept_reuse=True)
    assert (outcome.status, outcome.ledger) == (ReleaseStatus.RELEASED, SideState.GONE)


def test_a_redrive_pass_during_a_release_leaves_the_fresh_record_to_the_release() -> None:
    # The released record's receivedAt is P0's first delivery (long past the redrive's minimum
    # age): without regard to when it was released, a pass running while the release publishes
    # would publish the same record a second time.
    world = World()
    held = world.refuse(DRIFTED)
    publish = world.publisher.publish
    passes: list[repair.RepairTally] = []

    def redrive_runs_meanwhile(data: bytes, attributes: Mapping[str, str]) -> str:
        passes.append(
            repair.redrive(
                world.reader,
                world.audit,
                world.publisher.__class__(),  # anything it published would land here
                received_before=RELEASED_AT - timedelta(minutes=5),
                clock=lambda: RELEASED_AT,
            )
        )
        return publish(data, attributes)

    world.publisher.publish = redrive_runs_meanwhile  # type: ignore[method-assign]
    outcome = world.release(held, as_unrecognised=True)
    assert outcome.status is ReleaseStatus.RELEASED
    ((tally),) = passes
    assert (tally.published, tally.skipped) == (0, 1)
    assert len(world.publisher.messages) == 1


def test_a_release_whose_publish_failed_is_redriven_once_it_is_old_enough() -> None:
    world = World()
    held = world.refuse(DRIFTED)
    world.publisher.unavailable = True
    world.release(held, as_unrecognised=True)
    world.publisher.unavailable = False

    def pass_at(cutoff: datetime) -> repair.RepairTally:
        return repair.redrive(
            world.reader, world.audit, world.publisher, received_before=cutoff, clock=lambda: cutoff
        )

    assert pass_at(RELEASED_AT - timedelta(seconds=1)).published == 0  # still in flight
    assert pass_at(RELEASED_AT + timedelta(seconds=1)).published == 1
