"""The one exception tree: every deliberate failure of the receiver, the CLI and the adapters.

    ReceiverError                        (never raised itself)
    +-- RequestRejectedError             4xx: the delivery is refused and nothing is written
    |   +-- MethodNotAllowedError        405
    |   +-- UnsupportedMediaTypeError    415
    |   +-- PayloadTooLargeError         413
    |   +-- MalformedJsonError           400
    |   +-- SchemaViolationError         422 (field paths, never the offending values)
    |   |   +-- UnknownEventTypeError    422: strict mode refuses an event type we do not know
    |   +-- UnstorableRecordError        422: Firestore refuses the record for good
    |   +-- AuthenticationError          401 (a reason code: see AuthFailure)
    |       +-- TokenReplayError         401: a token already used with another body
    +-- DownstreamUnavailableError       503: Firestore or Pub/Sub failed; retrying may help
    |   +-- CredentialsMissingError      no usable Google credentials
    |   +-- MissingIndexError            a query needs a composite index the database lacks
    +-- ReleaseRefusedError              an operator's quarantine release that cannot go ahead
    +-- InternalError                    500: an unexpected exception (a bug), answered as JSON
    +-- ArchiveFormatError               an archive object is not Avro written with metadata
    +-- ConfigurationError               bad settings; names the variable

Every class declares its HTTP ``status``, ``code``, log ``severity`` and ``outcome``: the HTTP
edge (``p0_receiver.entrypoints.http``) and the CLI (``p0_receiver.entrypoints.cli.operator``)
each read them in one place. Library exceptions are translated at the adapter boundary with
``raise ... from``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Protocol

AUTHENTICATE_HINT = (
    "authenticate with `gcloud auth application-default login` (or set "
    "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file); for the local emulators "
    "set FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST instead"
)


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


class QuarantineNote(Protocol):
    """What the quarantine said of a refused body: ``core.quarantine.QuarantineReceipt``.

    A protocol, so that this module, the bottom of the house, imports nothing of ours.
    """

    @property
    def quarantine_id(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def status(self) -> str: ...


class ReceiverError(Exception):
    """Root of every error the product raises deliberately."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    severity: ClassVar[str] = "ERROR"  # of the request's log line
    outcome: ClassVar[str] = "error"  # the log line's outcome field
    retryable: ClassVar[bool] = False  # answered with Retry-After; the sender should try again
    public_message: str = "internal error"

    def __init__(self, public_message: str | None = None) -> None:
        self.public_message = public_message or type(self).public_message
        super().__init__(self.public_message)

    def response_fields(self) -> dict[str, Any]:
        """Fields of the JSON error body besides ``code`` and ``message``."""
        return {}

    def response_headers(self) -> dict[str, str]:
        return {}

    def log_fields(self) -> dict[str, Any]:
        """What the request's log line says about the failure (never a value from the body)."""
        return {"reason": self.code}

    def alert(self) -> tuple[str, str, dict[str, Any]] | None:
        """A separate (severity, event, fields) line this failure deserves, if any."""
        return None

    def for_operator(self) -> str:
        """The one line the CLI prints for this failure."""
        return str(self)


class RequestRejectedError(ReceiverError):
    """The delivery is refused; retrying it unchanged cannot succeed."""

    status = 400
    severity = "WARNING"
    outcome = "rejected"
    # Set when an authentic body was refused and handed to the quarantine (logged at the edge).
    quarantine: QuarantineNote | None = None


class MethodNotAllowedError(RequestRejectedError):
    status = 405
    code = "method_not_allowed"
    public_message = "only POST is accepted"

    def response_headers(self) -> dict[str, str]:
        return {"Allow": "POST"}


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

    def response_fields(self) -> dict[str, Any]:
        return {"violations": self.violations}


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

    def log_fields(self) -> dict[str, Any]:
        return {"reason": self.code, "detail": self.detail}


class AuthenticationError(RequestRejectedError):
    status = 401
    code = "unauthenticated"
    public_message = "the bearer token was not accepted"

    def __init__(self, reason: AuthFailure) -> None:
        super().__init__()
        self.reason = reason

    def response_fields(self) -> dict[str, Any]:
        return {"reason": str(self.reason)}

    def response_headers(self) -> dict[str, str]:
        # RFC 6750: no error attribute when the request carried no credentials at all.
        realm = 'Bearer realm="p0-notifications"'
        if self.reason is AuthFailure.MISSING_TOKEN:
            return {"WWW-Authenticate": realm}
        return {"WWW-Authenticate": f'{realm}, error="invalid_token"'}

    def log_fields(self) -> dict[str, Any]:
        return {"reason": str(self.reason)}


class TokenReplayError(AuthenticationError):
    """A token already accepted with one body came back with another, and policy refused it."""

    def __init__(self, fingerprint: str, first_event_id: str, event_id: str) -> None:
        super().__init__(AuthFailure.TOKEN_REPLAYED)
        self.fingerprint = fingerprint
        self.first_event_id = first_event_id
        self.event_id = event_id

    def alert(self) -> tuple[str, str, dict[str, Any]]:
        return (
            "ALERT",
            "p0_token_replay",
            {
                "tokenFingerprint": self.fingerprint,
                "firstEventId": self.first_event_id,
                "rejectedEventId": self.event_id,
            },
        )


class DownstreamUnavailableError(ReceiverError):
    """Firestore or Pub/Sub failed; the sender should retry (and a redrive will catch up)."""

    status = 503
    code = "unavailable"
    outcome = "unavailable"
    retryable = True
    public_message = "temporarily unable to accept the notification; retry later"

    def __init__(
        self, reason: str, detail: str | None = None, *, explanation: str | None = None
    ) -> None:
        super().__init__()
        # A short stable code for logs and the JSON body: audit_unavailable, publish_failed, ...
        self.reason = reason
        # The underlying error's class name (e.g. ServiceUnavailable): for logs and the record.
        self.detail = detail
        # What the service said, for an operator's terminal only: never logged or answered.
        self.explanation = explanation

    def response_fields(self) -> dict[str, Any]:
        return {"reason": self.reason}

    def log_fields(self) -> dict[str, Any]:
        return {"reason": self.reason, "detail": self.detail}

    def for_operator(self) -> str:
        if self.explanation is not None:
            return self.explanation
        return (
            f"{self.reason}: {self.detail or 'unknown'} (nothing was marked; "
            "run the command again later)"
        )


class CredentialsMissingError(DownstreamUnavailableError):
    """No Application Default Credentials (or they cannot refresh)."""

    def __init__(self, reason: str, detail: str, *, explanation: str) -> None:
        super().__init__(
            reason,
            detail,
            explanation=f"no usable Google credentials ({explanation}); {AUTHENTICATE_HINT}",
        )


class MissingIndexError(DownstreamUnavailableError):
    """Firestore's FAILED_PRECONDITION on a catalogued query: a composite index is missing."""

    def __init__(
        self,
        reason: str,
        *,
        query_name: str,
        order: str,
        equality_fields: tuple[str, ...],
        message: str,
    ) -> None:
        self.query_name = query_name
        self.equality_fields = equality_fields
        wanted = ", ".join(f"({name} ASCENDING, {order})" for name in equality_fields) or order
        super().__init__(
            reason,
            "FailedPrecondition",
            explanation=(
                f"Firestore refused the {query_name!r} query: it needs the composite index(es) "
                f"{wanted} on the audit collection. terraform/firestore.tf declares them "
                "(google_firestore_index.audit); run `terraform apply` and wait for the index "
                f"to finish building. Firestore said: {message}"
            ),
        )


class ReleaseRefusedError(ReceiverError):
    """A quarantined body an operator asked to release cannot be released (as asked).

    ``needs_flag`` names the option that would let it through (``--accept-reuse``,
    ``--as-unrecognised``): the CLI treats its absence as a usage error. Never an HTTP answer.
    """

    code = "release_refused"

    def __init__(self, message: str, *, needs_flag: str | None = None) -> None:
        super().__init__(message)
        self.needs_flag = needs_flag


class InternalError(ReceiverError):
    """An exception nobody anticipated: answered as JSON 500, logged by class name only."""

    status = 500
    code = "internal_error"
    public_message = "internal error"


class ArchiveFormatError(ReceiverError):
    """An archive object that is not an Avro file of a Cloud Storage subscription with
    metadata: ``audit verify`` cannot vouch for what it cannot read."""

    code = "archive_format"

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(
            f"{source} is not an archive object written with metadata ({detail}); the "
            "subscription needs cloud_storage_config.avro_config.write_metadata = true "
            "(terraform/evidence.tf)"
        )
        self.source = source


class ConfigurationError(ReceiverError):
    """A setting is missing or invalid; raised at cold start so a bad deploy fails loudly."""

    code = "configuration_error"
    severity = "CRITICAL"

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__()
        # str() names the variable (the crash that stops a bad deploy says what to fix).
        self.args = (f"{variable}: {problem}",)
        self.variable = variable
        self.problem = problem

    def log_fields(self) -> dict[str, Any]:
        return {"variable": self.variable, "problem": self.problem}

    def for_operator(self) -> str:
        return f"configuration: {self}"
