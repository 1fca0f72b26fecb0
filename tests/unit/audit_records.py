"""Audit records written by the receiver's own code, for the unit tests of the read path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from p0_receiver.core.events import parse_notification
from p0_receiver.core.record import build_audit_record
from p0_receiver.core.tokens import VerifiedToken
from tests.fakes import InMemoryAuditLog

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
TOKEN = VerifiedToken(
    header={"alg": "ES256", "kid": "k"},
    claims={"iss": "p0", "sub": "s", "aud": "a", "iat": 1, "exp": 2},
    fingerprint="f" * 64,
    expires_at=NOW,
    key_thumbprint="NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
    key_id="k",
)


def body(
    object_id: str,
    *,
    event_type: str = "request-approved",
    principal: str = "alice@corp.example",
    occurred: datetime | None = None,
) -> bytes:
    data: dict[str, Any] = {"id": object_id, "principal": principal, "reason": "INC-4711"}
    if occurred is not None:
        data["lastUpdatedTimestamp"] = int(occurred.timestamp() * 1000)
    envelope = {"id": "p0-notifier", "name": "P0", "eventType": event_type, "data": data}
    return json.dumps(envelope).encode()


def store(
    audit_log: InMemoryAuditLog, raw: bytes, *, age: timedelta, published: bool = False
) -> str:
    """Record ``raw`` as received ``age`` before NOW; optionally already published."""
    record = build_audit_record(
        parse_notification(raw), TOKEN, received_at=NOW - age, retention_days=30
    )
    audit_log.create(record)
    event_id = str(record["eventId"])
    if published:
        audit_log.mark_published(event_id, message_id="m-" + event_id[:6], now=NOW - age)
    return event_id
