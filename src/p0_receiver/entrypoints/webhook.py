"""The webhook's HTTP edge: one P0 delivery in, exactly 200 or a JSON error out, one log line.

Transport checks and the error mapping are ``entrypoints.http``'s; the decisions are the
delivery use case's (``usecases.deliver``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import flask

from p0_receiver.adapters.logs import TRACE_FIELD, log_event
from p0_receiver.core.errors import (
    InternalError,
    MethodNotAllowedError,
    ReceiverError,
    RequestRejectedError,
)
from p0_receiver.core.quarantine import QuarantineReceipt, QuarantineStatus
from p0_receiver.core.record import RecordField
from p0_receiver.entrypoints.http import (
    check_content_type,
    describe_bug,
    error_response,
    json_response,
    read_body,
    request_fields,
)
from p0_receiver.ports import DeliveryTracing
from p0_receiver.usecases.deliver import DeliveryOutcome, DeliveryService

# (severity, event) of the line that says what the quarantine did with a refused body.
_QUARANTINE_LINES = {
    QuarantineStatus.STORED: ("WARNING", "p0_quarantined"),
    QuarantineStatus.REPEATED: ("WARNING", "p0_quarantined"),
    QuarantineStatus.TOKEN_LIMIT: ("WARNING", "p0_quarantine_token_limit"),
    QuarantineStatus.FAILED: ("ERROR", "p0_quarantine_failed"),
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
        tracing: DeliveryTracing | None = None,
    ) -> None:
        self._service = service
        self._tracing = tracing
        self._project = project
        self._max_body_bytes = max_body_bytes
        self._retry_after_seconds = retry_after_seconds
        self._clock = clock

    def __call__(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        fields = request_fields(self._project, request)
        try:
            with self._span(request):
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
        with self._step("verify"):
            token = service.authenticate(request.headers.get("Authorization"))
        # From here on the line says which configured key verified the token (key rotation).
        fields[RecordField.KEY_THUMBPRINT] = token.key_thumbprint
        fields[RecordField.KEY_ID] = token.key_id
        check_content_type(request)
        body = read_body(request, self._max_body_bytes)
        return service.accept(token, body, now=self._clock())

    def _span(self, request: flask.Request) -> AbstractContextManager[None]:
        if self._tracing is None:
            return contextlib.nullcontext()
        return self._tracing.request(
            traceparent=request.headers.get("traceparent"),
            cloud_trace_context=request.headers.get("X-Cloud-Trace-Context"),
        )

    def _step(self, name: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext() if self._tracing is None else self._tracing.step(name)

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
        receipt = error.quarantine if isinstance(error, RequestRejectedError) else None
        if isinstance(receipt, QuarantineReceipt):
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
