"""The audit record and the Pub/Sub message attributes: pure functions of a delivery.

Field names here are a public contract: the operator CLI queries them, Terraform indexes
them, and subscribers filter on the attributes.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, NotRequired, TypedDict

from p0_receiver.core.events import Notification
from p0_receiver.core.tokens import VerifiedToken

RECORD_SCHEMA_VERSION = 1
MESSAGE_SCHEMA_VERSION = "1"
# CloudEvents in the Pub/Sub protocol binding's binary mode: the data is P0's body as sent,
# every context attribute a "ce-" message attribute beside the product's own.
CLOUDEVENTS_SPEC_VERSION = "1.0"
CLOUDEVENTS_TYPE_PREFIX = "dev.p0."  # the producer's reverse DNS, then P0's eventType
CLOUDEVENTS_SOURCE_PREFIX = "//p0.dev/notifiers/"  # then the notifier's id, percent-encoded
# Pub/Sub rejects attribute values over 1024 bytes; such values stay in the body only.
_MAX_ATTRIBUTE_BYTES = 1024
# P0 may rename or add time fields; these are tried in order for "when did this happen".
_OCCURRED_AT_FIELDS = ("lastUpdatedTimestamp", "createdAt", "requestedTimestamp")
# p0Times keys come from the body's own field names: bounded so that a body with thousands of
# "...At" fields, or one huge name, still makes a record Firestore stores (and indexes cheaply).
_MAX_P0_TIMES = 32
_MAX_P0_TIME_NAME_CHARS = 64


class PublishStatus(StrEnum):
    RECEIVED = "received"  # durably recorded, not yet (known to be) on the topic
    PUBLISHED = "published"


class RecordField:
    """Names of the audit record's fields (Firestore document keys): the one spelling of each.

    ``AuditRecord`` types the same keys, so mypy rejects a misspelled name wherever a
    record is indexed with one of these.
    """

    RECORD_SCHEMA_VERSION: Final = "recordSchemaVersion"
    EVENT_ID: Final = "eventId"
    EVENT_TYPE: Final = "eventType"
    NOTIFIER_ID: Final = "notifierId"
    NOTIFIER_NAME: Final = "notifierName"
    SHAPE_CHECK: Final = "shapeCheck"
    OBJECT_ID: Final = "objectId"
    PRINCIPAL: Final = "principal"
    REQUESTOR: Final = "requestor"
    APPROVER: Final = "approver"
    APPROVER_NAME: Final = "approverName"
    APPROVAL_SOURCE: Final = "approvalSource"
    PERMISSION_NAME: Final = "permissionName"
    PERMISSION_DESCRIPTION: Final = "permissionDescription"
    INTEGRATION: Final = "integration"
    ACCESS: Final = "access"
    REQUEST_STATUS: Final = "requestStatus"
    REASON: Final = "reason"
    P0_TIMES: Final = "p0Times"
    OCCURRED_AT: Final = "occurredAt"
    OCCURRED_AT_SOURCE: Final = "occurredAtSource"
    RECEIVED_AT: Final = "receivedAt"
    LAST_RECEIVED_AT: Final = "lastReceivedAt"
    DELIVERY_COUNT: Final = "deliveryCount"
    TOKEN: Final = "token"
    KEY_THUMBPRINT: Final = "keyThumbprint"
    KEY_ID: Final = "keyId"
    BODY: Final = "body"
    BODY_SHA256: Final = "bodySha256"
    BODY_BYTES: Final = "bodyBytes"
    PUBLISH_STATUS: Final = "publishStatus"
    MESSAGE_ID: Final = "messageId"
    PUBLISHED_AT: Final = "publishedAt"
    PUBLISH_ATTEMPTS: Final = "publishAttempts"
    LAST_PUBLISH_ERROR: Final = "lastPublishError"
    LAST_PUBLISH_ATTEMPT_AT: Final = "lastPublishAttemptAt"
    EXPIRE_AT: Final = "expireAt"
    TOKEN_REUSE: Final = "tokenReuse"
    RELEASED_FROM: Final = "releasedFrom"
    FINDINGS: Final = "findings"


class RecordToken(TypedDict):
    """The verified token as recorded: decoded header and claims, never the token itself."""

    header: Any
    claims: Any
    fingerprint: str


class TokenReuseNote(TypedDict):
    """Marks a body accepted under a token an earlier delivery already used."""

    firstEventId: str
    fingerprint: str


class ReleasedFrom(TypedDict):
    """Marks a record an operator released from the quarantine (``p0-receiver quarantine``)."""

    quarantineId: str
    reason: str
    releasedAt: datetime


class DerivedFields(TypedDict):
    """The fields that are a function of the body (and of when it was received)."""

    eventId: str
    eventType: str
    notifierId: str
    notifierName: str
    shapeCheck: str
    objectId: str | None
    principal: str | None
    requestor: str | None
    approver: str | None
    approverName: str | None
    approvalSource: str | None
    permissionName: str | None
    permissionDescription: str | None
    integration: str | None
    access: str | None
    requestStatus: str | None
    reason: str | None
    p0Times: dict[str, datetime]
    occurredAt: datetime
    occurredAtSource: str


class AuditRecord(DerivedFields):
    """One audit document (a public contract: the CLI, Terraform and auditors read it).

    A scan with a projection returns only the fields asked for.
    """

    recordSchemaVersion: int
    receivedAt: datetime
    lastReceivedAt: datetime
    deliveryCount: int
    token: RecordToken
    # Which configured key verified the token: RFC 7638 thumbprint, and its kid if it has one.
    # Absent on a body released from the quarantine (which key verified it was not kept).
    keyThumbprint: NotRequired[str]
    keyId: NotRequired[str | None]
    body: bytes
    bodySha256: str
    bodyBytes: int
    publishStatus: str
    messageId: str | None
    publishedAt: datetime | None
    publishAttempts: int
    lastPublishError: str | None
    lastPublishAttemptAt: datetime | None
    expireAt: NotRequired[datetime]
    tokenReuse: NotRequired[TokenReuseNote]
    releasedFrom: NotRequired[ReleasedFrom]
    # Access-review rule ids raised by this event alone as it was received (thresholds of
    # that moment; absent when none). Not derived from the body alone, so not in the
    # integrity check: the access-review report decides every rule again from the body.
    findings: NotRequired[list[str]]


@dataclass(frozen=True)
class SearchableFields:
    """What an auditor filters on, lifted out of ``data`` with type checks (never trusted)."""

    object_id: str | None = None
    principal: str | None = None
    requestor: str | None = None
    approver: str | None = None
    approver_name: str | None = None
    permission_name: str | None = None
    permission_description: str | None = None
    integration: str | None = None
    access: str | None = None
    request_status: str | None = None
    reason: str | None = None
    approval_source: str | None = None
    p0_times: dict[str, datetime] = field(default_factory=dict)


def _text(container: Mapping[str, Any] | None, *names: str) -> str | None:
    if not isinstance(container, Mapping):
        return None
    for name in names:
        value = container.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _epoch_millis(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def lift_fields(data: Mapping[str, Any]) -> SearchableFields:
    """Read the searchable fields of any event's ``data``, known shape or not."""
    approver = data.get("approver")
    details = data.get("approvalDetails")
    permission = data.get("permission")
    times: dict[str, datetime] = {}
    for block, name in ((approver, "approvalTimestamp"), (details, "approvedTimestamp")):
        if isinstance(block, Mapping) and (moment := _epoch_millis(block.get(name))) is not None:
            times[name] = moment
    for name, value in data.items():
        if len(times) == _MAX_P0_TIMES:
            break
        if (
            len(name) <= _MAX_P0_TIME_NAME_CHARS
            and name.endswith(("At", "Timestamp"))
            and (moment := _epoch_millis(value)) is not None
        ):
            times.setdefault(name, moment)
    return SearchableFields(
        object_id=_text(data, "id", "requestId"),
        principal=_text(data, "principal"),
        requestor=_text(data, "requestor"),
        approver=_text(approver, "email", "id") or _text(details, "email", "name"),
        approver_name=_text(approver, "name") or _text(details, "name"),
        permission_name=_text(permission, "name"),
        permission_description=_text(permission, "description"),
        integration=_text(data, "type"),
        access=_text(data, "access"),
        request_status=_text(data, "status"),
        reason=_text(data, "reason"),
        approval_source=_text(approver, "approvalSource") or _text(details, "approvalSource"),
        p0_times=times,
    )


def _firestore_safe(value: Any) -> Any:
    # Firestore cannot store an array directly inside an array; keep such values as JSON text.
    if isinstance(value, list):
        if any(isinstance(item, list) for item in value):
            return json.dumps(value, sort_keys=True)
        return [_firestore_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _firestore_safe(item) for key, item in value.items()}
    return value


def derived_fields(notification: Notification, *, received_at: datetime) -> DerivedFields:
    """The record's fields that are a function of the body (and of ``received_at``).

    The integrity check re-derives them from a stored body with this same function.
    """
    envelope = notification.envelope
    lifted = lift_fields(envelope.data)
    occurred_at = next(
        (lifted.p0_times[name] for name in _OCCURRED_AT_FIELDS if name in lifted.p0_times), None
    )
    return {
        RecordField.EVENT_ID: notification.event_id,
        RecordField.EVENT_TYPE: envelope.eventType,
        RecordField.NOTIFIER_ID: envelope.id,
        RecordField.NOTIFIER_NAME: envelope.name,
        RecordField.SHAPE_CHECK: str(notification.shape),
        RecordField.OBJECT_ID: lifted.object_id,
        RecordField.PRINCIPAL: lifted.principal,
        RecordField.REQUESTOR: lifted.requestor,
        RecordField.APPROVER: lifted.approver,
        RecordField.APPROVER_NAME: lifted.approver_name,
        RecordField.APPROVAL_SOURCE: lifted.approval_source,
        RecordField.PERMISSION_NAME: lifted.permission_name,
        RecordField.PERMISSION_DESCRIPTION: lifted.permission_description,
        RecordField.INTEGRATION: lifted.integration,
        RecordField.ACCESS: lifted.access,
        RecordField.REQUEST_STATUS: lifted.request_status,
        RecordField.REASON: lifted.reason,
        RecordField.P0_TIMES: lifted.p0_times,
        # Timelines sort on occurredAt; documents without the field would drop out of them.
        RecordField.OCCURRED_AT: occurred_at or received_at,
        RecordField.OCCURRED_AT_SOURCE: "p0" if occurred_at else "receivedAt",
    }


def recorded_token(header: Any, claims: Any, fingerprint: str) -> RecordToken:
    """The record's ``token``: decoded header and claims in a shape Firestore stores."""
    return {
        "header": _firestore_safe(header),
        "claims": _firestore_safe(claims),
        "fingerprint": fingerprint,
    }


def build_audit_record(
    notification: Notification,
    token: VerifiedToken | RecordToken,
    *,
    received_at: datetime,
    retention_days: int,
    token_reuse: TokenReuseNote | None = None,
    released_from: ReleasedFrom | None = None,
) -> AuditRecord:
    """The Firestore document for a first delivery (``deliveryCount`` 1, status received).

    ``token_reuse`` (``firstEventId``, ``fingerprint``) marks a body accepted under a token
    that an earlier delivery already used (see the reuse policy in ``usecases.deliver``).
    ``token`` is the verified token, or (for a body released from the quarantine, whose token
    is long gone) the header, claims and fingerprint the quarantine kept; ``released_from``
    marks such a record.
    """
    record: AuditRecord = {
        RecordField.RECORD_SCHEMA_VERSION: RECORD_SCHEMA_VERSION,
        # mypy cannot see that the optional keys are left out on purpose (set below).
        **derived_fields(notification, received_at=received_at),  # type: ignore[typeddict-item]
        RecordField.RECEIVED_AT: received_at,
        RecordField.LAST_RECEIVED_AT: received_at,
        RecordField.DELIVERY_COUNT: 1,
        RecordField.TOKEN: (
            recorded_token(token.header, token.claims, token.fingerprint)
            if isinstance(token, VerifiedToken)
            else token
        ),
        RecordField.BODY: notification.raw,
        RecordField.BODY_SHA256: hashlib.sha256(notification.raw).hexdigest(),
        RecordField.BODY_BYTES: len(notification.raw),
        RecordField.PUBLISH_STATUS: str(PublishStatus.RECEIVED),
        RecordField.MESSAGE_ID: None,
        RecordField.PUBLISHED_AT: None,
        RecordField.PUBLISH_ATTEMPTS: 0,
        RecordField.LAST_PUBLISH_ERROR: None,
        RecordField.LAST_PUBLISH_ATTEMPT_AT: None,
    }
    if retention_days > 0:
        record[RecordField.EXPIRE_AT] = received_at + timedelta(days=retention_days)
    if isinstance(token, VerifiedToken):
        record[RecordField.KEY_THUMBPRINT] = token.key_thumbprint
        record[RecordField.KEY_ID] = token.key_id
    if token_reuse is not None:
        record[RecordField.TOKEN_REUSE] = token_reuse
    if released_from is not None:
        record[RecordField.RELEASED_FROM] = released_from
    return record


def rfc3339(moment: datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: what subscribers parse most easily."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloudevent_attributes(record: AuditRecord) -> dict[str, str | None]:
    """The CloudEvents context of a record's message (Pub/Sub binding, binary mode).

    ``id`` is the event id, so a redelivery, a redrive or a replay of one event is one
    CloudEvent to a subscriber; ``time`` is when it happened at P0; ``subject`` P0's object.
    """
    occurred = record.get(RecordField.OCCURRED_AT, record[RecordField.RECEIVED_AT])
    return {
        "ce-specversion": CLOUDEVENTS_SPEC_VERSION,
        "ce-id": record[RecordField.EVENT_ID],
        "ce-source": CLOUDEVENTS_SOURCE_PREFIX
        + urllib.parse.quote(str(record[RecordField.NOTIFIER_ID]), safe=""),
        "ce-type": CLOUDEVENTS_TYPE_PREFIX + str(record[RecordField.EVENT_TYPE]),
        "ce-time": rfc3339(occurred),
        "ce-subject": record.get(RecordField.OBJECT_ID),
        "ce-datacontenttype": "application/json",
    }


def message_attributes(record: AuditRecord, *, replay: bool = False) -> dict[str, str]:
    """Pub/Sub attributes (schema version 1) for a stored audit record."""
    candidates = {
        "eventId": record[RecordField.EVENT_ID],
        "eventType": record[RecordField.EVENT_TYPE],
        "notifierId": record[RecordField.NOTIFIER_ID],
        "objectId": record.get(RecordField.OBJECT_ID),
        "principal": record.get(RecordField.PRINCIPAL),
        "receivedAt": rfc3339(record[RecordField.RECEIVED_AT]),
        "schemaVersion": MESSAGE_SCHEMA_VERSION,
    }
    if replay:
        candidates["replay"] = "true"
    if record.get(RecordField.TOKEN_REUSE):
        candidates["tokenReuse"] = "true"
    if record.get(RecordField.RELEASED_FROM):
        candidates["released"] = "true"
    if findings := record.get(RecordField.FINDINGS):
        # Catalogue order, so hasPrefix(attributes.findings, "self-approval") selects it.
        candidates["findings"] = ",".join(findings)
    candidates.update(cloudevent_attributes(record))
    return {
        name: value
        for name, value in candidates.items()
        if isinstance(value, str) and value and len(value.encode("utf-8")) <= _MAX_ATTRIBUTE_BYTES
    }
