"""The delivery use case: verify, parse, remember the token, record, publish.

Pure orchestration over the ports; time is passed in. The audit write always comes first:
a delivery is either durably recorded (then published, or left ``received`` for a redrive)
or answered with a retryable error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from p0_receiver.errors import AuthenticationError, AuthFailure, DownstreamUnavailableError
from p0_receiver.events import parse_notification
from p0_receiver.ports import AuditLog, EventPublisher, TokenLedger
from p0_receiver.record import (
    PublishStatus,
    RecordField,
    build_audit_record,
    message_attributes,
)
from p0_receiver.tokens import TokenVerifier, VerifiedToken


class TokenReplayError(AuthenticationError):
    """A token already accepted with one body came back with another."""

    def __init__(self, fingerprint: str, first_event_id: str, event_id: str) -> None:
        super().__init__(AuthFailure.TOKEN_REPLAYED)
        self.fingerprint = fingerprint
        self.first_event_id = first_event_id
        self.event_id = event_id


class DeliveryStatus(StrEnum):
    ACCEPTED = "accepted"  # first delivery of this body
    DUPLICATE = "duplicate"  # the body was already recorded


@dataclass(frozen=True)
class DeliveryOutcome:
    status: DeliveryStatus
    event_id: str
    event_type: str
    notifier_id: str
    message_id: str | None
    # False only when the publish succeeded but recording that fact failed: the record stays
    # "received" and a redrive will publish a duplicate (same eventId) later.
    publish_recorded: bool = True


@dataclass(frozen=True)
class DeliveryPolicy:
    retention_days: int
    reject_unknown_event_types: bool
    leeway_seconds: int


class DeliveryService:
    """Handles one P0 delivery; safe to share across threads and instances."""

    def __init__(
        self,
        verifier: TokenVerifier,
        ledger: TokenLedger,
        audit_log: AuditLog,
        publisher: EventPublisher,
        policy: DeliveryPolicy,
    ) -> None:
        self._verifier = verifier
        self._ledger = ledger
        self._audit_log = audit_log
        self._publisher = publisher
        self._policy = policy

    def authenticate(self, authorization: str | None) -> VerifiedToken:
        """Verify the bearer token; done before the body is read."""
        return self._verifier.verify(authorization)

    def accept(self, token: VerifiedToken, body: bytes, *, now: datetime) -> DeliveryOutcome:
        """Record and publish a delivery whose token has been verified."""
        notification = parse_notification(
            body, reject_unknown_types=self._policy.reject_unknown_event_types
        )
        event_id = notification.event_id
        first_event_id = self._ledger.remember(
            token.fingerprint,
            event_id,
            expires_at=token.expires_at + timedelta(seconds=self._policy.leeway_seconds),
            now=now,
        )
        if first_event_id != event_id:
            raise TokenReplayError(token.fingerprint, first_event_id, event_id)

        record: Mapping[str, Any] = build_audit_record(
            notification, token, received_at=now, retention_days=self._policy.retention_days
        )
        status = DeliveryStatus.ACCEPTED
        if not self._audit_log.create(record):
            status = DeliveryStatus.DUPLICATE
            record = self._audit_log.note_redelivery(event_id, now=now)
            if record[RecordField.PUBLISH_STATUS] == PublishStatus.PUBLISHED:
                return DeliveryOutcome(
                    status,
                    event_id,
                    notification.event_type,
                    notification.envelope.id,
                    record.get(RecordField.MESSAGE_ID),
                )
        message_id, recorded = publish_record(self._audit_log, self._publisher, record, now=now)
        return DeliveryOutcome(
            status,
            event_id,
            notification.event_type,
            notification.envelope.id,
            message_id,
            publish_recorded=recorded,
        )


def publish_record(
    audit_log: AuditLog,
    publisher: EventPublisher,
    record: Mapping[str, Any],
    *,
    now: datetime,
    replay: bool = False,
) -> tuple[str, bool]:
    """Publish a stored record's verbatim body; return (message id, whether that was recorded).

    A failed publish is noted on the record (status stays ``received``) and re-raised. The
    record is marked ``published`` only after the server returned a message id. A replay
    leaves the record untouched either way.
    """
    event_id = record[RecordField.EVENT_ID]
    try:
        message_id = publisher.publish(
            bytes(record[RecordField.BODY]), message_attributes(record, replay=replay)
        )
    except DownstreamUnavailableError as failure:
        if replay:
            raise  # a replay re-sends history: the record's own publish state is not its business
        # If even this note fails the record is still "received": a redrive will find it.
        with contextlib.suppress(DownstreamUnavailableError):
            audit_log.note_publish_failure(
                event_id, error=f"{failure.reason}: {failure.detail or 'unknown'}", now=now
            )
        raise
    if replay:
        return message_id, True
    try:
        audit_log.mark_published(event_id, message_id=message_id, now=now)
    except DownstreamUnavailableError:
        return message_id, False
    return message_id, True
