"""OpenTelemetry spans of a delivery, exported to Cloud Trace (``TRACING=on`` only).

Imported by the webhook's composition only when tracing is on: with it off, nothing of
OpenTelemetry is loaded. A delivery's span is a child of the caller's trace (W3C
``traceparent``, or Google's ``X-Cloud-Trace-Context``); under it, one span for the token's
verification, one per Firestore commit and one for the publish. The publish span's context
travels in the message attributes, twice: ``ce-traceparent``/``ce-tracestate`` (the
CloudEvents distributed-tracing extension) and ``googclient_traceparent`` (what Google's
Pub/Sub client libraries read when their OpenTelemetry tracing is enabled), so a subscriber's
span joins the same trace.

Spans carry names and ids only, never a token, a body or a value P0 relayed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.propagators.cloud_trace_propagator import CloudTraceFormatPropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from p0_receiver.core.record import AuditRecord
from p0_receiver.ports import AuditLog, EventPublisher, FirstDeliveryLog, TokenHistory, TokenLedger

if TYPE_CHECKING:
    from opentelemetry.context import Context

INSTRUMENTATION = "p0_receiver"
# The message attributes the publish span's context travels in (see the module docstring).
CLOUDEVENTS_PREFIX = "ce-"
GOOGLE_CLIENT_PREFIX = "googclient_"
_W3C = TraceContextTextMapPropagator()
# The incoming request: the W3C header first, Google's own when that is all there is.
_INCOMING = CompositePropagator([CloudTraceFormatPropagator(), _W3C])


class _CloudTraceOnFirstExport(SpanExporter):
    """Google's Cloud Trace exporter, built on the export thread at its first batch.

    The exporter opens a gRPC client when built; the webhook's process is forked by gunicorn
    after composition, and a channel must not cross a fork.
    """

    def __init__(self, project: str) -> None:
        self._project = project
        self._exporter: SpanExporter | None = None
        self._lock = threading.Lock()

    def _built(self) -> SpanExporter:
        with self._lock:
            if self._exporter is None:
                from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

                # The library's own constructor is untyped.
                self._exporter = CloudTraceSpanExporter(  # type: ignore[no-untyped-call]
                    project_id=self._project
                )
            return self._exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._built().export(spans)

    def shutdown(self) -> None:
        with self._lock:
            exporter = self._exporter
        if exporter is not None:  # never built: nothing was exported, nothing to close
            exporter.shutdown()


def tracer_provider(project: str) -> trace.TracerProvider:
    """The process's provider: one already configured (an SDK provider: tests, or a platform's
    instrumentation) is kept; otherwise one exporting to Cloud Trace in the background."""
    configured = trace.get_tracer_provider()
    if isinstance(configured, TracerProvider):
        return configured
    provider = TracerProvider(resource=Resource.create({"service.name": "p0-receiver"}))
    provider.add_span_processor(BatchSpanProcessor(_CloudTraceOnFirstExport(project)))
    trace.set_tracer_provider(provider)
    return provider


class OpenTelemetryTracing:
    """The webhook edge's spans (the ``DeliveryTracing`` port): the delivery's own, and a step's."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self._tracer = provider.get_tracer(INSTRUMENTATION)

    def request(
        self, *, traceparent: str | None, cloud_trace_context: str | None
    ) -> contextlib.AbstractContextManager[None]:
        carrier = {
            name: value
            for name, value in (
                ("traceparent", traceparent),
                ("x-cloud-trace-context", cloud_trace_context),
            )
            if value
        }
        parent: Context = _INCOMING.extract(carrier=carrier)
        return span(self._tracer, "p0 delivery", kind=trace.SpanKind.SERVER, context=parent)

    def step(self, name: str) -> contextlib.AbstractContextManager[None]:
        return span(self._tracer, name)

    @property
    def tracer(self) -> trace.Tracer:
        return self._tracer


def trace_attributes() -> dict[str, str]:
    """The current span's context as message attributes (empty outside a recorded span)."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    attributes: dict[str, str] = {}
    for key, value in carrier.items():
        attributes[CLOUDEVENTS_PREFIX + key] = value
        attributes[GOOGLE_CLIENT_PREFIX + key] = value
    return attributes


class TracedPublisher:
    """The publisher, in a producer span whose context the message carries."""

    def __init__(self, inner: EventPublisher, tracer: trace.Tracer, topic_path: str) -> None:
        self._inner = inner
        self._tracer = tracer
        self._topic = topic_path

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        with span(
            self._tracer,
            "pubsub publish",
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "gcp_pubsub",
                "messaging.destination.name": self._topic,
            },
        ):
            message_id = self._inner.publish(data, {**attributes, **trace_attributes()})
            trace.get_current_span().set_attribute("messaging.message.id", message_id)
            return message_id


class TracedLedger:
    """The replay ledger's writes, each in a Firestore commit span."""

    def __init__(self, inner: TokenLedger, tracer: trace.Tracer) -> None:
        self._inner = inner
        self._tracer = tracer

    def remember(
        self, fingerprint: str, event_id: str, *, expires_at: datetime, now: datetime
    ) -> TokenHistory:
        with _commit(self._tracer, "ledger remember"):
            return self._inner.remember(fingerprint, event_id, expires_at=expires_at, now=now)

    def accept_reuse(self, fingerprint: str, event_id: str, *, now: datetime) -> bool:
        with _commit(self._tracer, "ledger accept reuse"):
            return self._inner.accept_reuse(fingerprint, event_id, now=now)


class TracedAuditLog:
    """The audit log's writes, each in a Firestore commit span."""

    def __init__(self, inner: AuditLog, tracer: trace.Tracer) -> None:
        self._inner = inner
        self._tracer = tracer

    def create(self, record: AuditRecord) -> bool:
        with _commit(self._tracer, "audit create"):
            return self._inner.create(record)

    def note_redelivery(self, event_id: str, *, now: datetime) -> AuditRecord:
        with _commit(self._tracer, "audit note redelivery"):
            return self._inner.note_redelivery(event_id, now=now)

    def mark_published(self, event_id: str, *, message_id: str, now: datetime) -> None:
        with _commit(self._tracer, "audit mark published"):
            self._inner.mark_published(event_id, message_id=message_id, now=now)

    def note_publish_failure(self, event_id: str, *, error: str, now: datetime) -> None:
        with _commit(self._tracer, "audit note publish failure"):
            self._inner.note_publish_failure(event_id, error=error, now=now)


class TracedFirstDelivery:
    """The first delivery's one commit (ledger entry and record), in a Firestore commit span."""

    def __init__(self, inner: FirstDeliveryLog, tracer: trace.Tracer) -> None:
        self._inner = inner
        self._tracer = tracer

    def create_first(
        self, record: AuditRecord, *, fingerprint: str, expires_at: datetime, now: datetime
    ) -> bool:
        with _commit(self._tracer, "ledger and audit create"):
            return self._inner.create_first(
                record, fingerprint=fingerprint, expires_at=expires_at, now=now
            )


def _commit(tracer: trace.Tracer, operation: str) -> contextlib.AbstractContextManager[None]:
    return span(
        tracer,
        f"firestore commit: {operation}",
        kind=trace.SpanKind.CLIENT,
        attributes={"db.system": "firestore", "db.operation": operation},
    )


@contextlib.contextmanager
def span(
    tracer: trace.Tracer,
    name: str,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    context: Context | None = None,
    attributes: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """A current span that, on an exception, says only its class: an exception's message may
    quote a token or a body, and spans are exported like logs."""
    with tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield
        except BaseException as exc:
            current.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
