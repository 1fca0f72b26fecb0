"""The delivery use case: verify, parse, remember the token, record, publish.

Pure orchestration over the ports; time is passed in. The audit write always comes first:
a delivery is either durably recorded (then published, or left ``received`` for a redrive)
or answered with a retryable error. An authentic body that is refused goes to the quarantine.

Token reuse (P0's token does not sign the body, carries no ``jti``, and P0 signs several
events of one burst in the same second): a token already seen with another body is refused,
unless the reuse policy accepts it. ``burst`` accepts exactly what a P0 burst produces: a
deterministic algorithm (identical strings for identical claims) within a few seconds of
``iat``. A randomized algorithm (ECDSA, PSS) never repeats a token by itself, so its reuse is
always a replay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from p0_receiver.core.errors import (
    DownstreamUnavailableError,
    RequestRejectedError,
    SchemaViolationError,
    TokenReplayError,
    UnknownEventTypeError,
    UnstorableRecordError,
)
from p0_receiver.core.events import Notification, parse_notification
from p0_receiver.core.findings import ReviewPolicy, event_findings
from p0_receiver.core.quarantine import (
    QuarantineReason,
    QuarantineReceipt,
    QuarantineStatus,
    RefusedBody,
)
from p0_receiver.core.record import (
    AuditRecord,
    PublishStatus,
    RecordField,
    TokenReuseNote,
    build_audit_record,
    message_attributes,
)
from p0_receiver.core.tokens import TokenVerifier, VerifiedToken
from p0_receiver.ports import (
    AuditLog,
    EventPublisher,
    FirstDeliveryLog,
    Quarantine,
    TokenHistory,
    TokenLedger,
)
from p0_receiver.settings import TokenReusePolicy

# Even the ``accept`` policy stops somewhere: the ledger entry lists every accepted event.
MAX_EVENTS_PER_TOKEN = 100


class DeliveryStatus(StrEnum):
    ACCEPTED = "accepted"  # first delivery of this body
    DUPLICATE = "duplicate"  # the body was already recorded


@dataclass(frozen=True)
class TokenReuse:
    """A delivery accepted under a token an earlier delivery already used (flagged, logged)."""

    first_event_id: str
    fingerprint: str
    algorithm: str


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
    # Set only when this request accepted a reuse (not on a redelivery of one).
    token_reuse: TokenReuse | None = None
    # Access-review rules this event raised on receipt (the record's ``findings``).
    findings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeliveryPolicy:
    retention_days: int
    reject_unknown_event_types: bool
    leeway_seconds: int
    token_reuse: TokenReusePolicy = TokenReusePolicy.BURST
    token_burst_seconds: int = 5
    quarantine_retention_days: int = 30
    quarantine_max_per_token: int = 10
    # None: no access-review rule is decided on receipt.
    review: ReviewPolicy | None = None


class DeliveryService:
    """Handles one P0 delivery; safe to share across threads and instances."""

    def __init__(
        self,
        verifier: TokenVerifier,
        ledger: TokenLedger,
        audit_log: AuditLog,
        publisher: EventPublisher,
        policy: DeliveryPolicy,
        *,
        quarantine: Quarantine,
        first_delivery: FirstDeliveryLog | None = None,
    ) -> None:
        self._verifier = verifier
        self._first_delivery = first_delivery
        self._ledger = ledger
        self._audit_log = audit_log
        self._publisher = publisher
        self._quarantine = quarantine
        self._policy = policy

    def authenticate(self, authorization: str | None) -> VerifiedToken:
        """Verify the bearer token; done before the body is read."""
        return self._verifier.verify(authorization)

    def accept(self, token: VerifiedToken, body: bytes, *, now: datetime) -> DeliveryOutcome:
        """Record and publish a delivery whose token has been verified."""
        notification = self._parse(token, body, now=now)
        event_id = notification.event_id
        ledger_expiry = token.expires_at + timedelta(seconds=self._policy.leeway_seconds)
        record = self._record(notification, token, now=now)
        first_delivery = self._first_delivery
        if first_delivery is not None and self._store(
            lambda: first_delivery.create_first(
                record, fingerprint=token.fingerprint, expires_at=ledger_expiry, now=now
            ),
            token,
            body,
            now=now,
        ):
            # The common case in one round trip: a new token and a new body, both now stored.
            message_id, recorded = publish_record(self._audit_log, self._publisher, record, now=now)
            return self._outcome(
                DeliveryStatus.ACCEPTED,
                notification,
                message_id,
                None,
                recorded=recorded,
                findings=record.get(RecordField.FINDINGS, []),
            )

        # A token or a body seen before: one step at a time, to tell a duplicate from a reuse.
        history = self._ledger.remember(
            token.fingerprint, event_id, expires_at=ledger_expiry, now=now
        )
        token_reuse = self._check_reuse(token, body, event_id, history, now=now)
        if event_id != history.first_event_id:
            reuse_field: TokenReuseNote = {
                "firstEventId": history.first_event_id,
                "fingerprint": token.fingerprint,
            }
            record = self._record(notification, token, now=now, token_reuse=reuse_field)
        status = DeliveryStatus.ACCEPTED
        if not self._store(lambda: self._audit_log.create(record), token, body, now=now):
            status = DeliveryStatus.DUPLICATE
            record = self._audit_log.note_redelivery(event_id, now=now)
            if record[RecordField.PUBLISH_STATUS] == PublishStatus.PUBLISHED:
                return self._outcome(
                    status,
                    notification,
                    record.get(RecordField.MESSAGE_ID),
                    token_reuse,
                    findings=record.get(RecordField.FINDINGS, []),
                )
        message_id, recorded = publish_record(self._audit_log, self._publisher, record, now=now)
        return self._outcome(
            status,
            notification,
            message_id,
            token_reuse,
            recorded=recorded,
            findings=record.get(RecordField.FINDINGS, []),
        )

    def _record(
        self,
        notification: Notification,
        token: VerifiedToken,
        *,
        now: datetime,
        token_reuse: TokenReuseNote | None = None,
    ) -> AuditRecord:
        """The audit record, with the access-review rules one event decides (no I/O)."""
        record = build_audit_record(
            notification,
            token,
            received_at=now,
            retention_days=self._policy.retention_days,
            token_reuse=token_reuse,
        )
        if self._policy.review is not None and (
            findings := event_findings(record, self._policy.review)
        ):
            record[RecordField.FINDINGS] = list(findings)
        return record

    @staticmethod
    def _outcome(
        status: DeliveryStatus,
        notification: Notification,
        message_id: str | None,
        token_reuse: TokenReuse | None,
        *,
        recorded: bool = True,
        findings: list[str] | tuple[str, ...] = (),
    ) -> DeliveryOutcome:
        return DeliveryOutcome(
            status,
            notification.event_id,
            notification.event_type,
            notification.envelope.id,
            message_id,
            publish_recorded=recorded,
            token_reuse=token_reuse,
            findings=tuple(findings),
        )

    def _parse(self, token: VerifiedToken, body: bytes, *, now: datetime) -> Notification:
        try:
            return parse_notification(
                body, reject_unknown_types=self._policy.reject_unknown_event_types
            )
        except SchemaViolationError as refusal:
            reason = (
                QuarantineReason.UNKNOWN_TYPE
                if isinstance(refusal, UnknownEventTypeError)
                else QuarantineReason.SCHEMA_VIOLATION
            )
            details = {"violations": refusal.violations}
            self._keep(refusal, RefusedBody(body, token, reason, details), now=now)
            raise

    def _check_reuse(
        self,
        token: VerifiedToken,
        body: bytes,
        event_id: str,
        history: TokenHistory,
        *,
        now: datetime,
    ) -> TokenReuse | None:
        """Refuse a replay; return the reuse this request accepted, if any."""
        if event_id in history.accepted_event_ids:
            return None  # the token's first body, or a reuse accepted earlier, redelivered
        if not self._reuse_allowed(token, history, now=now):
            replay = TokenReplayError(token.fingerprint, history.first_event_id, event_id)
            details = {"firstEventId": history.first_event_id}
            refused = RefusedBody(body, token, QuarantineReason.TOKEN_REUSED, details)
            self._keep(replay, refused, now=now)
            raise replay
        # Before the record: if this fails nothing is written and P0's retry starts over.
        self._ledger.accept_reuse(token.fingerprint, event_id, now=now)
        return TokenReuse(history.first_event_id, token.fingerprint, token.algorithm)

    def _reuse_allowed(self, token: VerifiedToken, history: TokenHistory, *, now: datetime) -> bool:
        if len(history.accepted_event_ids) >= MAX_EVENTS_PER_TOKEN:
            return False
        policy = self._policy.token_reuse
        if policy is TokenReusePolicy.ACCEPT:
            return True
        if policy is TokenReusePolicy.REJECT:
            return False
        in_burst = now - token.issued_at <= timedelta(seconds=self._policy.token_burst_seconds)
        return token.signs_deterministically and in_burst

    def _store(
        self, write: Callable[[], bool], token: VerifiedToken, body: bytes, *, now: datetime
    ) -> bool:
        """Run one write of the record; a record Firestore refuses for good is quarantined."""
        try:
            return write()
        except UnstorableRecordError as refusal:
            details = {"error": refusal.detail}
            self._keep(
                refusal, RefusedBody(body, token, QuarantineReason.UNSTORABLE, details), now=now
            )
            raise

    def _keep(self, error: RequestRejectedError, refused: RefusedBody, *, now: datetime) -> None:
        """Quarantine a refused body; the error (so the 4xx) stands whatever the quarantine did."""
        try:
            error.quarantine = self._quarantine.keep(
                refused,
                now=now,
                retention_days=self._policy.quarantine_retention_days,
                max_per_token=self._policy.quarantine_max_per_token,
            )
        except DownstreamUnavailableError:
            error.quarantine = QuarantineReceipt(
                refused.quarantine_id, refused.reason, QuarantineStatus.FAILED
            )


def publish_record(
    audit_log: AuditLog,
    publisher: EventPublisher,
    record: AuditRecord,
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
