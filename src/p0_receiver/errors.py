"""The receiver's exception tree; every rejection and retryable failure has a class here.

    ReceiverError                      (never raised itself)
    +-- RequestRejectedError           4xx: the delivery is refused and nothing is written
    |   +-- MethodNotAllowedError      405
    |   +-- UnsupportedMediaTypeError  415
    |   +-- PayloadTooLargeError       413
    |   +-- MalformedJsonError         400
    |   +-- SchemaViolationError       422 (field paths, never the offending values)
    |   |   +-- UnknownEventTypeError  422: strict mode refuses an event type we do not know
    |   +-- UnstorableRecordError      422: Firestore refuses the record for good
    |   +-- AuthenticationError        401 (a reason code: see AuthFailure)
    +-- DownstreamUnavailableError     503: retryable; nothing was lost
    +-- InternalError                  500: an unexpected exception (a bug), answered as JSON
    ConfigurationError                 bad settings at cold start; names the variable

Library exceptions are translated into these at the adapter boundary with ``raise ... from``;
``p0_receiver.http.error_response`` is the one place that turns them into HTTP responses.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p0_receiver.quarantine import QuarantineReceipt


class AuthFailure(StrEnum):
    """Reason codes for a 401: in the JSON body and the log line, stable for alerting."""

    MISSING_TOKEN = "missing_token"
    MALFORMED_HEADER = "malformed_header"
    MALFORMED_TOKEN = "malformed_token"
    DISALLOWED_ALGORITHM = "disallowed_algorithm"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    MISSING_CLAIM = "missing_claim"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_SUBJECT = "wrong_subject"
    LIFETIME_TOO_LONG = "lifetime_too_long"
    TOKEN_REPLAYED = "token_replayed"


class ReceiverError(Exception):
    """Root of every error the receiver answers deliberately."""

    status: int = 500
    code: str = "internal"
    public_message: str = "internal error"

    def __init__(self, public_message: str | None = None) -> None:
        self.public_message = public_message or type(self).public_message
        super().__init__(self.public_message)


class RequestRejectedError(ReceiverError):
    """The delivery is refused; retrying it unchanged cannot succeed."""

    status = 400
    # Set when an authentic body was refused and handed to the quarantine (logged at the edge).
    quarantine: QuarantineReceipt | None = None


class MethodNotAllowedError(RequestRejectedError):
    status = 405
    code = "method_not_allowed"
    public_message = "only POST is accepted"


class UnsupportedMediaTypeError(RequestRejectedError):
    status = 415
    code = "unsupported_media_type"
    public_message = "Content-Type must be application/json"


class PayloadTooLargeError(RequestRejectedError):
    status = 413
    code = "payload_too_large"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"body exceeds the limit of {limit_bytes} bytes")


class MalformedJsonError(RequestRejectedError):
    status = 400
    code = "malformed_json"
    public_message = "body is not a valid UTF-8 JSON document"


class SchemaViolationError(RequestRejectedError):
    """The JSON parsed but does not match P0's envelope or a known event's shape."""

    status = 422
    code = "schema_violation"
    public_message = "body does not match the P0 notification schema"

    def __init__(self, violations: list[dict[str, str]], public_message: str | None = None) -> None:
        super().__init__(public_message)
        # Each violation is {"field": "data.approver.email", "problem": "missing"}: no values.
        self.violations = violations


class UnknownEventTypeError(SchemaViolationError):
    """Strict mode (P0_REJECT_UNKNOWN_EVENT_TYPES) refuses an event type we have no model for."""

    def __init__(self) -> None:
        super().__init__(
            [{"field": "eventType", "problem": "unknown event type (strict mode is on)"}]
        )


class UnstorableRecordError(RequestRejectedError):
    """Firestore rejected the audit record as invalid: retrying the same body cannot succeed."""

    status = 422
    code = "unstorable_record"
    public_message = "the notification cannot be stored as an audit record"

    def __init__(self, detail: str) -> None:
        super().__init__()
        self.detail = detail  # the Google error's class name, for the log


class AuthenticationError(RequestRejectedError):
    status = 401
    code = "unauthenticated"
    public_message = "the bearer token was not accepted"

    def __init__(self, reason: AuthFailure) -> None:
        super().__init__()
        self.reason = reason


class DownstreamUnavailableError(ReceiverError):
    """Firestore or Pub/Sub failed; the sender should retry (and a redrive will catch up)."""

    status = 503
    code = "unavailable"
    public_message = "temporarily unable to accept the notification; retry later"

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__()
        # A short stable code for logs and the JSON body: audit_unavailable, publish_failed, ...
        self.reason = reason
        # The underlying error's class name (e.g. ServiceUnavailable): for logs and the record.
        self.detail = detail


class InternalError(ReceiverError):
    """An exception nobody anticipated: answered as JSON 500, logged by class name only."""

    status = 500
    code = "internal_error"
    public_message = "internal error"


class ConfigurationError(Exception):
    """A setting is missing or invalid; raised at cold start so a bad deploy fails loudly."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem
