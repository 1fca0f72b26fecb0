"""TRACING=on: a delivery's spans join the caller's trace, and the message carries it on.

``main.py`` is loaded by functions-framework's own loader and served by a real threaded WSGI
server on the emulators; the OpenTelemetry SDK's in-memory exporter collects the spans (a
process that already has an SDK provider keeps it: ``adapters.tracing.tracer_provider``).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import flask
import functions_framework
import pytest
from cloudevents.http import from_http
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.serving import BaseWSGIServer, make_server

from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from tests.conftest import Stack
from tests.support import token

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
MAIN = str(Path(__file__).resolve().parents[2] / "main.py")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"

_exporter = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _sdk_provider() -> None:
    # Once per process (OpenTelemetry refuses a second global provider); the receiver keeps it.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)


@pytest.fixture
def server(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    for name, value in stack.function_env(TRACING="on").items():
        monkeypatch.setenv(name, value)
    app: flask.Flask = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="receive", source=MAIN
    )
    wsgi: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=wsgi.serve_forever, daemon=True)
    thread.start()
    _exporter.clear()
    try:
        yield wsgi.server_port
    finally:
        wsgi.shutdown()
        thread.join(timeout=10)


def _post(port: int, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST",
            "/",
            body=PREAPPROVAL_CREATED,
            headers={"Content-Type": "application/json", **headers},
        )
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def test_a_delivery_s_spans_join_the_caller_s_trace_and_travel_in_the_message(
    server: int, stack: Stack
) -> None:
    raw_token = token()
    status, body = _post(
        server,
        {
            "Authorization": f"Bearer {raw_token}",
            "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01",
        },
    )
    assert status == 200, body

    spans = _by_name(_exporter.get_finished_spans())
    delivery = spans["p0 delivery"]
    assert delivery.kind is SpanKind.SERVER
    assert format(delivery.context.trace_id, "032x") == TRACE_ID
    assert delivery.parent is not None
    assert format(delivery.parent.span_id, "016x") == CALLER_SPAN
    steps = ["verify", "firestore commit: ledger and audit create", "pubsub publish"]
    steps.append("firestore commit: audit mark published")
    for name in steps:
        step = spans[name]
        assert step.parent is not None
        assert step.parent.span_id == delivery.context.span_id, name
        assert step.context.trace_id == delivery.context.trace_id, name
    publish = spans["pubsub publish"]
    assert publish.kind is SpanKind.PRODUCER
    assert publish.attributes is not None
    (message,) = stack.messages()
    assert publish.attributes["messaging.message.id"] == message.message_id

    # The subscriber's view: the publish span is the parent it continues from.
    expected = f"00-{TRACE_ID}-{format(publish.context.span_id, '016x')}-01"
    assert message.attributes["ce-traceparent"] == expected
    assert message.attributes["googclient_traceparent"] == expected
    event = from_http(dict(message.attributes), message.data)
    assert event["traceparent"] == expected  # the CloudEvents distributed-tracing extension
    assert event["id"] == body["eventId"]

    # Spans are exported like logs: names and ids only, never the token or the body.
    exported = json.dumps([span.to_json() for span in spans.values()])
    assert raw_token not in exported
    assert raw_token.split(".")[1] not in exported
    for relayed in ("john.smith", "preapproval-created"):
        assert relayed.encode() in PREAPPROVAL_CREATED
        assert relayed not in exported


def test_google_s_trace_header_is_joined_too(server: int) -> None:
    span_decimal = int(CALLER_SPAN, 16)
    status, _ = _post(
        server,
        {
            "Authorization": f"Bearer {token()}",
            "X-Cloud-Trace-Context": f"{TRACE_ID}/{span_decimal};o=1",
        },
    )
    assert status == 200
    delivery = _by_name(_exporter.get_finished_spans())["p0 delivery"]
    assert format(delivery.context.trace_id, "032x") == TRACE_ID
    assert delivery.parent is not None
    assert format(delivery.parent.span_id, "016x") == CALLER_SPAN


def test_a_refused_delivery_s_span_names_the_error_class_only(server: int, stack: Stack) -> None:
    status, body = _post(server, {"Authorization": "Bearer not-a-token"})
    assert status == 401, body
    spans = _by_name(_exporter.get_finished_spans())
    delivery, verify = spans["p0 delivery"], spans["verify"]
    assert delivery.parent is None  # no caller trace: a root of its own
    for span in (delivery, verify):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "AuthenticationError"
        assert span.events == ()  # no exception event: its message could quote the input
    assert "not-a-token" not in json.dumps([span.to_json() for span in spans.values()])
    assert not any(name.startswith(("firestore", "pubsub")) for name in spans)
    assert stack.nothing_written()
