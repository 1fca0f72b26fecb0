"""The HTTP edge: transport checks, the one error-to-response mapping, the request log line.

P0's contract: exactly 200 on success; every error is JSON, even a bug's (never an HTML 500).
The checks run cheapest first and the body is never read past the size limit. Each function's
handler (``entrypoints.webhook``, ``entrypoints.redrive``) answers through ``error_response``.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from typing import Any

import flask

from p0_receiver.adapters.logs import TRACE_FIELD, log_event, trace_field
from p0_receiver.core.errors import (
    InternalError,
    PayloadTooLargeError,
    ReceiverError,
    UnsupportedMediaTypeError,
)

# How many innermost frames the internal-error line names (file, line, function: no values).
_FRAMES_LOGGED = 5

_JSON = "application/json"


def json_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> flask.Response:
    return flask.Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        headers=dict(headers or {}),
        mimetype=_JSON,
    )


def error_response(error: ReceiverError, *, retry_after_seconds: int) -> flask.Response:
    """The only place an error becomes an HTTP response: what the error class declares."""
    body = {"code": error.code, "message": error.public_message, **error.response_fields()}
    headers = error.response_headers()
    if error.retryable:
        headers["Retry-After"] = str(retry_after_seconds)
    return json_response(error.status, {"error": body}, headers)


def check_content_type(request: flask.Request) -> None:
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != _JSON or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaTypeError()


def read_body(request: flask.Request, limit: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(limit)  # refused before a byte of the body is read
    body: bytes = request.stream.read(limit + 1)  # chunked bodies: read one byte past, no more
    if len(body) > limit:
        raise PayloadTooLargeError(limit)
    return body


def describe_bug(bug: Exception, fields: dict[str, Any]) -> str:
    """Log an unexpected exception: its class and where it was raised, never its message (it
    may quote a token or body). Returns the request line's severity."""
    frames = traceback.extract_tb(bug.__traceback__)[-_FRAMES_LOGGED:]
    where = [f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}" for frame in frames]
    log_event(
        "ERROR",
        "p0_internal_error",
        {TRACE_FIELD: fields[TRACE_FIELD], "exceptionClass": type(bug).__name__, "where": where},
    )
    fields.update(outcome=InternalError.outcome, reason=InternalError.code)
    return InternalError.severity


def request_fields(project: str, request: flask.Request) -> dict[str, Any]:
    """The start of a request's log line: its trace, from Google's or the W3C header."""
    return {
        TRACE_FIELD: trace_field(
            project,
            request.headers.get("X-Cloud-Trace-Context"),
            request.headers.get("traceparent"),
        )
    }
