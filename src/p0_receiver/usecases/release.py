"""The release use case: a quarantined body becomes an audit record through the delivery path.

An operator's decision over the ports: the body is re-parsed with the code deployed now,
recorded with ``build_audit_record`` (marked ``releasedFrom``) and published with
``publish_record``, exactly as a delivery would be. The token is long gone: the record's
``token`` is built from the header, claims and fingerprint the quarantine kept. The record's id
is the body's content hash, so releasing a body already recorded creates no second record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from p0_receiver.core.errors import (
    DownstreamUnavailableError,
    MalformedJsonError,
    ReleaseRefusedError,
    SchemaViolationError,
)
from p0_receiver.core.events import Notification, ShapeCheck, parse_notification
from p0_receiver.core.integrity import check_integrity
from p0_receiver.core.quarantine import QuarantineField, QuarantineReason
from p0_receiver.core.record import (
    AuditRecord,
    PublishStatus,
    RecordField,
    RecordToken,
    TokenReuseNote,
    build_audit_record,
    recorded_token,
)
from p0_receiver.ports import AuditLog, AuditReader, EventPublisher, QuarantineDesk, TokenLedger
from p0_receiver.usecases.deliver import publish_record

ACCEPT_REUSE_FLAG = "--accept-reuse"
AS_UNRECOGNISED_FLAG = "--as-unrecognised"


class ReleaseStatus(StrEnum):
    RELEASED = "released"  # a new audit record, published
    UNPUBLISHED = "unpublished"  # a new audit record; the publish failed (left for a redrive)
    # The body was an audit record already: none created, and this release publishes nothing
    # (its creator, P0's retry or the redrive does, exactly once per pass).
    ALREADY_RECORDED = "already_recorded"


class SideState(StrEnum):
    """What became of a step after the record exists: each is reported, none undoes it."""

    DONE = "done"
    GONE = "gone"  # nothing left to update (discarded meanwhile, or past its retention)
    UNREACHABLE = "unreachable"  # Firestore did not answer: the step can be run again


def _after_record(step: Callable[[], bool]) -> SideState:
    try:
        return SideState.DONE if step() else SideState.GONE
    except DownstreamUnavailableError:
        return SideState.UNREACHABLE


@dataclass(frozen=True)
class ReleaseOutcome:
    """What a release did, on each side: the record, the quarantine entry, the token ledger."""

    status: ReleaseStatus
    event_id: str
    shape: str
    message_id: str | None = None
    failure: DownstreamUnavailableError | None = None
    record_status: str = PublishStatus.PUBLISHED  # the audit record's publish status now
    entry: SideState = SideState.DONE  # the quarantine entry marked released
    # For a token_reused body: the token ledger told that the event is accepted under its
    # token (GONE: the token had expired from it); None for every other reason.
    ledger: SideState | None = None


@dataclass(frozen=True)
class ReleaseRequest:
    """What the operator asked for; the flags are the decisions a release cannot make itself."""

    quarantine_id: str
    accept_reuse: bool = False
    as_unrecognised: bool = False


def _violations_text(refusal: SchemaViolationError) -> str:
    return "; ".join(f"{item['field']}: {item['problem']}" for item in refusal.violations)


def _parse(body: bytes, *, as_unrecognised: bool) -> Notification:
    # Never strict about unknown types: the release is the human decision strict mode asks for.
    try:
        return parse_notification(body, keep_unrecognised=as_unrecognised)
    except MalformedJsonError as refusal:
        raise ReleaseRefusedError("the body is not JSON this code can read") from refusal
    except SchemaViolationError as refusal:
        if as_unrecognised:
            raise ReleaseRefusedError(
                "even kept as unrecognised, the body's envelope must match (id, name, "
                f"eventType, data): {_violations_text(refusal)}"
            ) from refusal
        raise ReleaseRefusedError(
            f"the body still does not match this code's model: {_violations_text(refusal)}; "
            f"pass {AS_UNRECOGNISED_FLAG} to record it as an unrecognised event",
            needs_flag=AS_UNRECOGNISED_FLAG,
        ) from refusal


def _token(entry: Mapping[str, Any]) -> RecordToken:
    unreadable = ReleaseRefusedError("the entry's token header and claims are unreadable")
    kept = entry.get(QuarantineField.TOKEN)
    if not isinstance(kept, Mapping):
        raise unreadable
    try:
        header = json.loads(kept["header"])
        claims = json.loads(kept["claims"])
    except (KeyError, TypeError, ValueError) as problem:
        raise unreadable from problem
    fingerprint = kept.get("fingerprint")
    if not isinstance(fingerprint, str) or not isinstance(header, dict):
        raise unreadable
    return recorded_token(header, claims, fingerprint)


def _body(entry: Mapping[str, Any], quarantine_id: str) -> bytes:
    stored = entry.get(QuarantineField.BODY)
    if not isinstance(stored, bytes | bytearray | memoryview):
        raise ReleaseRefusedError("the entry holds no body")
    body = bytes(stored)
    if hashlib.sha256(body).hexdigest() != quarantine_id:
        raise ReleaseRefusedError("the entry's body no longer hashes to its id: not released")
    return body


def _reuse_note(entry: Mapping[str, Any], token: RecordToken) -> TokenReuseNote | None:
    details = entry.get(QuarantineField.DETAILS)
    first = details.get("firstEventId") if isinstance(details, Mapping) else None
    if not isinstance(first, str):
        return None
    return {"firstEventId": first, "fingerprint": token["fingerprint"]}


def release(  # noqa: PLR0917 (the use case's ports, each its own)
    request: ReleaseRequest,
    desk: QuarantineDesk,
    reader: AuditReader,
    audit_log: AuditLog,
    publisher: EventPublisher,
    ledger: TokenLedger,
    *,
    retention_days: int,
    now: datetime,
) -> ReleaseOutcome:
    """Record and publish one quarantined body; mark the entry released.

    Raises ``ReleaseRefusedError`` when the entry is missing, its token was reused and
    ``accept_reuse`` is off, its body still does not parse and ``as_unrecognised`` is off, or
    the body is an audit record already that fails the integrity check. Only the release whose
    ``create()`` lands publishes: another one meeting the record (a second operator, P0's
    retry) publishes nothing, and a record still ``received`` is the redrive's. A failed
    publish leaves the new record ``received`` (a redrive publishes it). The steps are
    ordered so that whatever fails, the record is never left unreported: the entry is marked
    last, and an entry gone by then is reported, not raised.
    """
    quarantine_id = request.quarantine_id
    entry = desk.get(quarantine_id)
    if entry is None:
        raise ReleaseRefusedError("no quarantine entry with that id")
    reason = entry.get(QuarantineField.REASON)
    if reason == QuarantineReason.TOKEN_REUSED and not request.accept_reuse:
        raise ReleaseRefusedError(
            "this body came under a token already used with another body (a possible replay); "
            f"pass {ACCEPT_REUSE_FLAG} once you have checked it is genuine",
            needs_flag=ACCEPT_REUSE_FLAG,
        )
    body = _body(entry, quarantine_id)
    notification = _parse(body, as_unrecognised=request.as_unrecognised)
    token = _token(entry)
    record = _released_record(
        entry, notification, token, quarantine_id, retention_days=retention_days, now=now
    )
    event_id = notification.event_id
    status = ReleaseStatus.RELEASED
    if not audit_log.create(record):
        # P0 sent it again after an upgrade, or another release got there first: one record.
        status = ReleaseStatus.ALREADY_RECORDED
        existing: AuditRecord | None = reader.get(event_id)
        if existing is None:  # deleted between the two calls: try again later
            raise DownstreamUnavailableError("audit_unavailable", detail="RecordVanished")
        _refuse_unless_intact(existing, event_id)
        record = existing
    shape = str(record.get(RecordField.SHAPE_CHECK, ShapeCheck.UNRECOGNISED))
    message_id: str | None = record.get(RecordField.MESSAGE_ID)
    failure: DownstreamUnavailableError | None = None
    if status is ReleaseStatus.RELEASED:
        try:
            message_id, _ = publish_record(audit_log, publisher, record, now=now)
        except DownstreamUnavailableError as publish_failure:
            status, failure = ReleaseStatus.UNPUBLISHED, publish_failure
    published = status is ReleaseStatus.RELEASED or (
        record.get(RecordField.PUBLISH_STATUS) == PublishStatus.PUBLISHED
    )
    # The token ledger learns that this event is accepted under its token, so that P0
    # delivering the same body under it again is a duplicate, not a replay.
    ledger_state = (
        _after_record(lambda: ledger.accept_reuse(token["fingerprint"], event_id, now=now))
        if reason == QuarantineReason.TOKEN_REUSED
        else None
    )
    entry_state = _after_record(
        lambda: desk.mark_released(quarantine_id, event_id=event_id, now=now)
    )
    return ReleaseOutcome(
        status,
        event_id,
        shape,
        message_id if published else None,
        failure,
        record_status=PublishStatus.PUBLISHED if published else PublishStatus.RECEIVED,
        entry=entry_state,
        ledger=ledger_state,
    )


def _released_record(
    entry: Mapping[str, Any],
    notification: Notification,
    token: RecordToken,
    quarantine_id: str,
    *,
    retention_days: int,
    now: datetime,
) -> AuditRecord:
    reason = entry.get(QuarantineField.REASON)
    first_received = entry.get(QuarantineField.FIRST_RECEIVED_AT)
    received_at = first_received if isinstance(first_received, datetime) else now
    record = build_audit_record(
        notification,
        token,
        received_at=received_at,
        retention_days=retention_days,
        token_reuse=_reuse_note(entry, token) if reason == QuarantineReason.TOKEN_REUSED else None,
        released_from={
            "quarantineId": quarantine_id,
            "reason": str(reason),
            "releasedAt": now,
        },
    )
    last_received = entry.get(QuarantineField.LAST_RECEIVED_AT)
    if isinstance(last_received, datetime):
        record[RecordField.LAST_RECEIVED_AT] = last_received
    count = entry.get(QuarantineField.COUNT)
    if isinstance(count, int) and count > 0:
        record[RecordField.DELIVERY_COUNT] = count
    return record


def _refuse_unless_intact(record: AuditRecord, event_id: str) -> None:
    """The redrive's and the replay's rule: a record whose fields no longer derive from its
    own body is never published, nor vouched for by marking an entry released into it."""
    report = check_integrity(record)
    if not report.ok:
        raise ReleaseRefusedError(
            f"the audit record {event_id} fails the integrity check "
            f"({'; '.join(report.problems)}): the entry is not marked released and nothing is "
            f"published; inspect it with `p0-receiver audit show {event_id}`"
        )
