"""The scheduled redrive's HTTP edge: one POST runs one repair pass and answers its counts.

The error mapping is ``entrypoints.http``'s; the pass is the repair use case's
(``usecases.repair``), the same one the CLI's ``redrive`` runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import flask

from p0_receiver.adapters.logs import TRACE_FIELD, log_event
from p0_receiver.core.errors import InternalError, MethodNotAllowedError, ReceiverError
from p0_receiver.core.record import rfc3339
from p0_receiver.entrypoints.http import describe_bug, error_response, json_response, request_fields
from p0_receiver.usecases.repair import (
    RepairPorts,
    RepairStep,
    RepairTally,
    StepListener,
    StepOutcome,
    redrive,
)

# Cloud Scheduler retries on its own schedule; the header only tells a person when to look.
_REDRIVE_RETRY_AFTER_SECONDS = 60


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
