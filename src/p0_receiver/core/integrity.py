"""Tamper evidence: does a stored record still agree with its own body?

The body must hash to its recorded digest and event id, and every field derived from the
body (who, what, approved by whom, why, when) must equal what the receiver's own code
derives from it again. Fields the body does not determine (delivery and publish history,
keys added by newer writers) are not compared.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from p0_receiver.core.errors import MalformedJsonError, SchemaViolationError
from p0_receiver.core.events import ShapeCheck, event_id_for, parse_notification
from p0_receiver.core.record import RecordField, derived_fields

_NOT_A_NOTIFICATION = (
    "the body is not a P0 notification any more: its fields cannot be derived from it"
)


@dataclass(frozen=True)
class IntegrityReport:
    body_matches_digest: bool
    body_matches_event_id: bool
    fields_match_body: bool
    mismatched_fields: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _mismatched_fields(record: Mapping[str, Any], raw: bytes) -> tuple[str, ...] | None:
    """Derived fields whose stored value differs from the body's; None if it does not parse."""
    # A body an operator released as unrecognised is read the way the release read it.
    released = record.get(RecordField.RELEASED_FROM)
    as_released = bool(released) and record.get(RecordField.SHAPE_CHECK) == ShapeCheck.UNRECOGNISED
    try:
        notification = parse_notification(raw, keep_unrecognised=as_released)
    except (MalformedJsonError, SchemaViolationError):
        return None
    received_at = record.get(RecordField.RECEIVED_AT)
    if not isinstance(received_at, datetime):
        # occurredAt falls back on it: without it nothing can be compared honestly.
        return (RecordField.RECEIVED_AT,)
    derived = derived_fields(notification, received_at=received_at)
    return tuple(
        name
        for name, value in derived.items()
        # The event id has its own check (and its own message).
        if name != RecordField.EVENT_ID and (name not in record or record[name] != value)
    )


def check_integrity(record: Mapping[str, Any]) -> IntegrityReport:
    """Re-hash the body, re-derive the record's fields from it, and compare with the record."""
    body = record.get(RecordField.BODY)
    if not isinstance(body, bytes | bytearray | memoryview):
        return IntegrityReport(False, False, False, (), ("the record has no stored body",))
    raw = bytes(body)
    problems: list[str] = []
    digest_ok = hashlib.sha256(raw).hexdigest() == record.get(RecordField.BODY_SHA256)
    if not digest_ok:
        problems.append("the body no longer hashes to bodySha256")
    try:
        id_ok = event_id_for(json.loads(raw)) == record.get(RecordField.EVENT_ID)
    except (ValueError, SchemaViolationError):
        id_ok = False
    if not id_ok:
        problems.append("the body's canonical hash is not the record's eventId")
    mismatched = _mismatched_fields(record, raw)
    if mismatched is None:
        problems.append(_NOT_A_NOTIFICATION)
    elif mismatched:
        problems.append("fields that no longer match the body: " + ", ".join(mismatched))
    return IntegrityReport(digest_ok, id_ok, mismatched == (), mismatched or (), tuple(problems))
