"""P0 notification bodies: parsing the received bytes, validating, and the content-derived id.

The envelope is strict; ``preapproval-created`` (the one documented event) has a full model;
request events are modelled defensively; unknown event types and unknown fields are accepted
and kept verbatim, because a verified body must never be lost to a model older than P0's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from p0_receiver.core.errors import MalformedJsonError, SchemaViolationError, UnknownEventTypeError

PREAPPROVAL_CREATED = "preapproval-created"
REQUEST_EVENT_PREFIX = "request-"

EpochMillis = Annotated[int, Field(ge=0)]
Text = Annotated[str, Field(min_length=1, max_length=4096)]


class _P0Model(BaseModel):
    # strict: P0 sends JSON numbers for times and strings for names; no coercion hides drift.
    model_config = ConfigDict(frozen=True, extra="allow", strict=True, defer_build=True)


class Envelope(_P0Model):
    """The fields every custom-notifier delivery carries."""

    id: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^\S+$")]
    name: Annotated[str, Field(max_length=256)]
    eventType: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^\S+$")]  # noqa: N815
    data: dict[str, Any]


class Permission(_P0Model):
    name: Text
    description: Annotated[str, Field(max_length=4096)]


class Approver(_P0Model):
    id: Text
    name: Annotated[str, Field(max_length=1024)]
    email: Text
    approvalTimestamp: EpochMillis  # noqa: N815
    approvalSource: Text  # noqa: N815


class PreapprovalCreated(_P0Model):
    """``data`` of ``preapproval-created``, as documented by P0 field by field."""

    id: Text
    type: Text
    access: Text
    permission: Permission
    startsAt: EpochMillis  # noqa: N815
    endsAt: EpochMillis  # noqa: N815
    createdAt: EpochMillis  # noqa: N815
    principal: Text
    approver: Approver
    reason: Annotated[str, Field(max_length=16_384)]


class _Lenient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)


class ApprovalDetails(_Lenient):
    approvalSource: str | None = None  # noqa: N815
    approvedTimestamp: int | None = None  # noqa: N815
    name: str | None = None
    email: str | None = None


class RequestEvent(_Lenient):
    """``data`` of ``request-*`` events: unpublished by P0, so every field is optional."""

    id: str | None = None
    requestId: str | None = None  # noqa: N815
    type: str | None = None
    access: str | None = None
    status: str | None = None
    reason: str | None = None
    requestor: str | None = None
    principal: str | None = None
    permission: dict[str, Any] | None = None
    approver: dict[str, Any] | None = None
    approvalDetails: ApprovalDetails | None = None  # noqa: N815
    requestedTimestamp: int | None = None  # noqa: N815
    grantTimestamp: int | None = None  # noqa: N815
    expiryTimestamp: int | None = None  # noqa: N815
    lastUpdatedTimestamp: int | None = None  # noqa: N815


class ShapeCheck(StrEnum):
    """How well our models know the delivery's ``data``; kept on the audit record."""

    VALIDATED = "validated"  # a full model matched
    LENIENT = "lenient"  # request event whose optional fields all matched
    # Unknown type, request data our model could not read, or a body an operator released
    # from the quarantine as it is (``quarantine release --as-unrecognised``).
    UNRECOGNISED = "unrecognised"


@dataclass(frozen=True)
class Notification:
    """A parsed delivery: the envelope, the exact bytes, and the content-derived event id."""

    envelope: Envelope
    raw: bytes
    event_id: str
    shape: ShapeCheck

    @property
    def event_type(self) -> str:
        return self.envelope.eventType


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys make parsers disagree (first vs last wins): a classic smuggling vector.
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("duplicate object key")
    return document


def _reject_constant(_: str) -> None:
    raise ValueError("NaN and Infinity are not JSON")


def _load_json(raw: bytes) -> Any:
    try:
        return json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedJsonError() from exc


def _violations(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[dict[str, str]]:
    # Field paths and pydantic's message only: include_input=False keeps values out.
    return [
        {
            "field": ".".join(str(part) for part in (*prefix, *error["loc"])) or "(body)",
            "problem": str(error["msg"]),
        }
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def event_id_for(document: Any) -> str:
    """SHA-256 of the RFC 8785 canonical JSON: same content, same id, whatever the spacing."""
    try:
        canonical = rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
        # e.g. integers beyond I-JSON's 2**53 range, or an escaped lone surrogate ("\ud800",
        # valid JSON syntax but no Unicode text): neither can be hashed canonically.
        raise SchemaViolationError(
            [{"field": "(body)", "problem": "not representable as I-JSON (RFC 7493)"}]
        ) from exc
    return hashlib.sha256(canonical).hexdigest()


def parse_notification(
    raw: bytes, *, reject_unknown_types: bool = False, keep_unrecognised: bool = False
) -> Notification:
    """Validate the received bytes; raise 400/422 errors that carry no input values.

    ``keep_unrecognised`` (an operator's release of a quarantined body) reads a known type's
    ``data`` that does not match its model as ``unrecognised`` instead of refusing it; the
    envelope must still match.
    """
    document = _load_json(raw)
    try:
        envelope = Envelope.model_validate(document)
    except ValidationError as exc:
        raise SchemaViolationError(_violations(exc)) from exc

    if envelope.eventType == PREAPPROVAL_CREATED:
        try:
            PreapprovalCreated.model_validate(envelope.data)
            shape = ShapeCheck.VALIDATED
        except ValidationError as exc:
            if not keep_unrecognised:
                raise SchemaViolationError(_violations(exc, ("data",))) from exc
            shape = ShapeCheck.UNRECOGNISED
    elif envelope.eventType.startswith(REQUEST_EVENT_PREFIX):
        try:
            RequestEvent.model_validate(envelope.data)
            shape = ShapeCheck.LENIENT
        except ValidationError:
            shape = ShapeCheck.UNRECOGNISED  # kept verbatim all the same
    elif reject_unknown_types:
        raise UnknownEventTypeError()
    else:
        shape = ShapeCheck.UNRECOGNISED
    return Notification(envelope=envelope, raw=raw, event_id=event_id_for(document), shape=shape)
