"""Tamper evidence: does a stored body still hash to its recorded digest and event id?"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p0_receiver.errors import SchemaViolationError
from p0_receiver.events import event_id_for
from p0_receiver.record import RecordField


@dataclass(frozen=True)
class IntegrityReport:
    body_matches_digest: bool
    body_matches_event_id: bool
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_integrity(record: Mapping[str, Any]) -> IntegrityReport:
    """Recompute SHA-256 of the body and its canonical event id; compare with the record."""
    problems: list[str] = []
    body = record.get(RecordField.BODY)
    if not isinstance(body, bytes | bytearray | memoryview):
        return IntegrityReport(False, False, ("the record has no stored body",))
    raw = bytes(body)
    digest_ok = hashlib.sha256(raw).hexdigest() == record.get("bodySha256")
    if not digest_ok:
        problems.append("the body no longer hashes to bodySha256")
    try:
        id_ok = event_id_for(json.loads(raw)) == record.get(RecordField.EVENT_ID)
    except (ValueError, SchemaViolationError):
        id_ok = False
    if not id_ok:
        problems.append("the body's canonical hash is not the record's eventId")
    return IntegrityReport(digest_ok, id_ok, tuple(problems))
