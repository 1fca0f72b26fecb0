"""The HTTP edge: transport checks, the one error-to-response mapping, the request log line.

P0's contract: exactly 200 on success; every error is JSON, even a bug's (never an HTML 500).
The checks run cheapest first and the body is never read past the size limit.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import flask

from p0_receiver.errors import (
    InternalError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    ReceiverError,
    RequestRejectedError,
    UnsupportedMediaTypeError,
)
from p0_receiver.logs import TRACE_FIELD, log_event, trace_field
from p0_receiver.quarantine import QuarantineStatus
from p0_receiver.record import RecordField, rfc3339
from p0_receiver.repair import (
    RepairPorts,
    RepairStep,
    RepairTally,
    StepListener,
    StepOutcome,
    redrive,
)
from p0_receiver.service import DeliveryOutcome, DeliveryService

# How many innermost frames the internal-error line names (file, line, function: no values).
_FRAMES_LOGGED = 5
# (severity, event) of the line that says what the quarantine did with a refused body.
_QUARANTINE_LINES = {
    QuarantineStatus.STORED: ("WARNING", "p0_quarantined"),
    QuarantineStatus.REPEATED: ("WARNING", "p0_quarantined"),
    QuarantineStatus.TOKEN_LIMIT: ("WARNING", "p0_quarantine_token_limit"),
    QuarantineStatus.FAILED: ("ERROR", "p0_quarantine_failed"),
}

_JSON = "application/json"
# Cloud Scheduler retries on its own schedule; the header only tells a person when to look.
_REDRIVE_RETRY_AFTER_SECONDS = 60


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


def _check_content_type(request: flask.Request) -> None:
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != _JSON or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaTypeError()


def _read_body(request: flask.Request, limit: int) -> bytes:
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


class WebhookHandler:
    """Turns one Flask request into a response through the delivery service."""

    def __init__(
        self,
        service: Callable[[], DeliveryService],
        *,
        project: str,
        max_body_bytes: int,
        retry_after_seconds: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._service = service
        self._project = project
        self._max_body_bytes = max_body_bytes
        self._retry_after_seconds = retry_after_seconds
        self._clock = clock

    def __call__(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        fields = request_fields(self._project, request)
        try:
            outcome = self._handle(request, fields)
        except ReceiverError as error:
            response = error_response(error, retry_after_seconds=self._retry_after_seconds)
            severity = self._describe_failure(error, fields)
        except Exception as bug:  # noqa: BLE001 - the one catch-all: P0 gets JSON, we get a line
            response = error_response(InternalError(), retry_after_seconds=0)
            severity = describe_bug(bug, fields)
        else:
            response = json_response(
                200, {"status": str(outcome.status), "eventId": outcome.event_id}
            )
            severity = self._describe_success(outcome, fields)
        fields["httpStatus"] = response.status_code
        fields["latencyMs"] = round((time.perf_counter() - started) * 1000, 2)
        log_event(severity, "p0_delivery", fields)
        return response

    def _handle(self, request: flask.Request, fields: dict[str, Any]) -> DeliveryOutcome:
        if request.method != "POST":
            raise MethodNotAllowedError()
        service = self._service()
        token = service.authenticate(request.headers.get("Authorization"))
        # From here on the line says which configured key verified the token (key rotation).
        fields[RecordField.KEY_THUMBPRINT] = token.key_thumbprint
        fields[RecordField.KEY_ID] = token.key_id
        _check_content_type(request)
        body = _read_body(request, self._max_body_bytes)
        return service.accept(token, body, now=self._clock())

    @staticmethod
    def _describe_success(outcome: DeliveryOutcome, fields: dict[str, Any]) -> str:
        fields.update(
            outcome=str(outcome.status),
            eventId=outcome.event_id,
            eventType=outcome.event_type,
            notifierId=outcome.notifier_id,
            messageId=outcome.message_id,
        )
        if outcome.findings:
            # The self-approval alert's log-based metric matches on this (terraform/findings.tf).
            fields["findings"] = ",".join(outcome.findings)
        if outcome.token_reuse is not None:
            reuse = outcome.token_reuse
            fields["tokenReuse"] = True
            log_event(
                "WARNING",
                "p0_token_reuse_accepted",
                {
                    TRACE_FIELD: fields[TRACE_FIELD],
                    "tokenFingerprint": reuse.fingerprint,
                    "algorithm": reuse.algorithm,
                    "firstEventId": reuse.first_event_id,
                    "eventId": outcome.event_id,
                },
            )
        if not outcome.publish_recorded:
            fields["reason"] = "publish_mark_failed"
            return "WARNING"
        return "INFO"

    @staticmethod
    def _describe_failure(error: ReceiverError, fields: dict[str, Any]) -> str:
        if isinstance(error, RequestRejectedError) and error.quarantine is not None:
            receipt = error.quarantine
            fields["quarantineId"] = receipt.quarantine_id
            severity, event = _QUARANTINE_LINES[receipt.status]
            log_event(
                severity,
                event,
                {
                    TRACE_FIELD: fields[TRACE_FIELD],
                    "reason": str(receipt.reason),
                    "quarantineId": receipt.quarantine_id,
                    "quarantineStatus": str(receipt.status),
                },
            )
        alert = error.alert()
        if alert is not None:
            severity, event, details = alert
            log_event(severity, event, {TRACE_FIELD: fields[TRACE_FIELD], **details})
        fields.update(outcome=error.outcome, **error.log_fields())
        return error.severity


class RedriveHandler:
    """The scheduled redrive: one POST runs one pass of the repair use case the CLI's
    ``redrive`` runs, and answers its counts as JSON (503 when Firestore cannot be read).

    Private by deployment (IAM: only the scheduler's service account may invoke it); it reads
    no request body.
    """

    def __init__(
        self,
        ports: Callable[[], RepairPorts],
        *,
        project: str,
        min_age: timedelta,
        max_records: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._ports = ports
        self._project = project
        self._min_age = min_age
        self._max_records = max_records
        self._clock = clock

    def __call__(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        fields = request_fields(self._project, request)
        received_before = self._clock() - self._min_age
        try:
            tally = self._pass(request, received_before, fields)
        except ReceiverError as error:
            response = error_response(error, retry_after_seconds=_REDRIVE_RETRY_AFTER_SECONDS)
            fields.update(outcome=error.outcome, **error.log_fields())
            severity = error.severity
        except Exception as bug:  # noqa: BLE001 - the one catch-all: JSON 500 and one line
            response = error_response(InternalError(), retry_after_seconds=0)
            severity = describe_bug(bug, fields)
        else:
            counts = {
                # Published but not marked still reached the topic (a later pass re-sends it).
                "published": tally.published + tally.unrecorded,
                "failed": tally.failed,
                "skipped": tally.skipped + tally.failed_integrity,
                "failedIntegrity": tally.failed_integrity,
                "unrecorded": tally.unrecorded,
                "stopped": tally.stopped,
            }
            response = json_response(200, counts)
            fields.update(counts, receivedBefore=rfc3339(received_before))
            fields["outcome"] = "completed" if tally.clean and not tally.stopped else "incomplete"
            severity = "INFO" if fields["outcome"] == "completed" else "WARNING"
        fields["httpStatus"] = response.status_code
        fields["latencyMs"] = round((time.perf_counter() - started) * 1000, 2)
        log_event(severity, "p0_redrive", fields)
        return response

    def _pass(
        self, request: flask.Request, received_before: datetime, fields: dict[str, Any]
    ) -> RepairTally:
        if request.method != "POST":
            raise MethodNotAllowedError()
        ports = self._ports()
        return redrive(
            ports.reader,
            ports.audit_log,
            ports.publisher,
            received_before=received_before,
            limit=self._max_records,
            clock=self._clock,
            on_step=self._step_logger(fields),
        )

    @staticmethod
    def _step_logger(fields: dict[str, Any]) -> StepListener:
        def on_step(step: RepairStep) -> None:
            # A stored record that no longer matches its own body is never published: say so
            # loudly, once per record (field names only, never values).
            if step.outcome is StepOutcome.REFUSED:
                log_event(
                    "ERROR",
                    "p0_redrive_integrity_failed",
                    {
                        TRACE_FIELD: fields[TRACE_FIELD],
                        "eventId": step.event_id,
                        "problems": list(step.problems),
                    },
                )

        return on_step
