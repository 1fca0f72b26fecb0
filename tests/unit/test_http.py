"""The HTTP edge over in-memory ports: status codes, headers, JSON bodies and the log line."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import flask
import pytest
from werkzeug.test import TestResponse

from p0_receiver.adapters.lazy import Lazy
from p0_receiver.adapters.logs import LOGGER_NAME, CloudLoggingFormatter
from p0_receiver.bootstrap.webhook import Backends, build_webhook
from p0_receiver.core.errors import ConfigurationError, DownstreamUnavailableError, ReceiverError
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.settings import Settings
from tests.fakes import (
    InMemoryAuditLog,
    InMemoryFirstDelivery,
    InMemoryPublisher,
    InMemoryQuarantine,
    InMemoryTokenLedger,
)
from tests.support import AUDIENCE, ISSUER, SUBJECT, keypair, padded, token

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TRACE = "105445aa7843bc8bf206b12000100000"


class Edge:
    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = lambda: NOW,
        backends: Callable[[Settings], Backends] | None = None,
        **env: str,
    ) -> None:
        self.ledger = InMemoryTokenLedger()
        self.audit = InMemoryAuditLog()
        self.publisher = InMemoryPublisher()
        self.quarantine = InMemoryQuarantine()
        self.first_delivery = InMemoryFirstDelivery(self.ledger, self.audit)
        handler = build_webhook(
            {
                "GOOGLE_CLOUD_PROJECT": "acme",
                "PUBSUB_TOPIC": "p0",
                "P0_PUBLIC_KEYS": keypair().public_pem.decode(),
                "P0_JWT_ISSUER": ISSUER,
                "P0_JWT_AUDIENCE": AUDIENCE,
                "P0_JWT_SUBJECT": SUBJECT,
                **env,
            },
            backends=backends
            or (
                lambda _: Backends(
                    self.ledger, self.audit, self.publisher, self.quarantine, self.first_delivery
                )
            ),
            clock=clock,
        )
        app = flask.Flask("edge")
        app.add_url_rule(
            "/", "receive", lambda: handler(flask.request), methods=["GET", "POST", "PUT", "DELETE"]
        )
        self.client = app.test_client()

    def post(
        self,
        body: bytes = PREAPPROVAL_CREATED,
        *,
        authorization: str | None = "fresh",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> TestResponse:
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if authorization == "fresh":
            all_headers["Authorization"] = f"Bearer {token()}"
        elif authorization is not None:
            all_headers["Authorization"] = authorization
        return self.client.post("/", data=body, headers=all_headers)

    def nothing_written(self) -> bool:
        return not (
            self.ledger.entries
            or self.audit.records
            or self.publisher.messages
            or self.quarantine.entries
        )


@pytest.fixture
def edge() -> Edge:
    return Edge()


def error_of(response: TestResponse) -> dict[str, Any]:
    assert response.mimetype == "application/json"
    error: dict[str, Any] = response.get_json()["error"]
    return error


def test_success_is_exactly_200_with_a_small_json_body(edge: Edge) -> None:
    response = edge.post()
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "accepted",
        "eventId": edge.publisher.messages[0][2]["eventId"],
    }
    assert edge.post().get_json()["status"] == "duplicate"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_get_405_with_allow(edge: Edge, method: str) -> None:
    response = edge.client.open("/", method=method)
    assert (response.status_code, response.headers["Allow"]) == (405, "POST")
    assert error_of(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_non_json_content_type_gets_415(edge: Edge, content_type: str) -> None:
    response = edge.post(content_type=content_type)
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    assert edge.nothing_written()


def test_json_with_utf8_charset_is_accepted(edge: Edge) -> None:
    assert edge.post(content_type="application/json; charset=UTF-8").status_code == 200


def test_declared_oversized_body_gets_413_without_reading(edge: Edge) -> None:
    response = edge.post(b"{" + b" " * (64 * 1024) + b"}")
    assert response.status_code == 413
    assert error_of(response) == {
        "code": "payload_too_large",
        "message": "body exceeds the limit of 65536 bytes",
    }
    assert edge.nothing_written()


def test_chunked_oversized_body_gets_413(edge: Edge) -> None:
    # As gunicorn hands over a chunked body: decoded, no length, input marked as terminated.
    stream = io.BytesIO(b"{" + b" " * (70 * 1024) + b"}")
    response = edge.client.post(
        "/",
        input_stream=stream,
        environ_overrides={"wsgi.input_terminated": True},
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token()}",
            "Transfer-Encoding": "chunked",
        },
    )
    assert response.status_code == 413
    assert edge.nothing_written()


def test_authentication_comes_before_the_body_is_considered(edge: Edge) -> None:
    response = edge.post(b"x" * 100_000, authorization=None, content_type="text/plain")
    assert response.status_code == 401


def test_missing_token_gets_bearer_challenge_without_error(edge: Edge) -> None:
    response = edge.post(authorization=None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="p0-notifications"'
    assert error_of(response) == {
        "code": "unauthenticated",
        "message": "the bearer token was not accepted",
        "reason": "missing_token",
    }
    assert edge.nothing_written()


def test_bad_token_gets_invalid_token_challenge(edge: Edge) -> None:
    response = edge.post(authorization="Bearer a.b.c")
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="p0-notifications", error="invalid_token"'
    )
    assert error_of(response)["reason"] == "malformed_token"


def test_malformed_json_gets_400(edge: Edge) -> None:
    response = edge.post(b"{not json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"
    assert edge.nothing_written()


def test_schema_violation_gets_422_with_paths(edge: Edge) -> None:
    response = edge.post(json.dumps({"id": "n", "name": "x", "eventType": "e"}).encode())
    assert response.status_code == 422
    assert error_of(response)["violations"] == [{"field": "data", "problem": "Field required"}]
    # Nothing recorded or published; the authentic body is kept in quarantine, not lost.
    assert edge.ledger.entries == edge.audit.records == {}
    assert edge.publisher.messages == []
    (held,) = edge.quarantine.entries.values()
    assert held["reason"] == "schema_violation"


def test_downstream_failure_gets_503_with_retry_after(edge: Edge) -> None:
    edge.audit.unavailable = True
    response = edge.post()
    assert (response.status_code, response.headers["Retry-After"]) == (503, "30")
    assert error_of(response)["reason"] == "audit_unavailable"
    assert edge.publisher.messages == []


def test_one_structured_log_line_per_request_without_token_or_body(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    raw_token = token()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        edge.post(
            authorization=f"Bearer {raw_token}",
            headers={"X-Cloud-Trace-Context": f"{TRACE}/1;o=1"},
        )
    (record,) = caplog.records
    line = CloudLoggingFormatter().format(record)
    entry = json.loads(line)
    assert entry["severity"] == "INFO"
    assert entry["message"] == "p0_delivery"
    assert entry["logging.googleapis.com/trace"] == f"projects/acme/traces/{TRACE}"
    assert (entry["outcome"], entry["eventType"], entry["httpStatus"]) == (
        "accepted",
        "preapproval-created",
        200,
    )
    assert entry["eventId"] == edge.publisher.messages[0][2]["eventId"]
    assert isinstance(entry["latencyMs"], float)
    assert raw_token not in line
    assert "fancy demo" not in line


def test_replay_logs_a_security_alert(edge: Edge, caplog: pytest.LogCaptureFixture) -> None:
    raw_token = token()
    edge.post(authorization=f"Bearer {raw_token}")
    other = json.dumps({**json.loads(PREAPPROVAL_CREATED), "name": "Other"}).encode()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        response = edge.post(other, authorization=f"Bearer {raw_token}")
    assert response.status_code == 401
    assert error_of(response)["reason"] == "token_replayed"
    kept, alert, summary = (json.loads(CloudLoggingFormatter().format(r)) for r in caplog.records)
    assert (kept["message"], kept["reason"]) == ("p0_quarantined", "token_reused")
    assert (alert["severity"], alert["message"]) == ("ALERT", "p0_token_replay")
    assert alert["firstEventId"] != alert["rejectedEventId"]
    assert (summary["outcome"], summary["reason"]) == ("rejected", "token_replayed")
    assert len(edge.audit.records) == 1


def test_rejections_log_reason_codes(edge: Edge, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        edge.post(authorization="Bearer x.y.z")
    entry = json.loads(CloudLoggingFormatter().format(caplog.records[0]))
    assert (entry["severity"], entry["outcome"], entry["reason"], entry["httpStatus"]) == (
        "WARNING",
        "rejected",
        "malformed_token",
        401,
    )


def test_malformed_trace_header_is_ignored(edge: Edge, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        edge.post(headers={"X-Cloud-Trace-Context": "../../etc fake"})
    entry = json.loads(CloudLoggingFormatter().format(caplog.records[0]))
    assert "logging.googleapis.com/trace" not in entry


def test_bad_configuration_logs_one_critical_line_naming_the_variable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ConfigurationError):
        Edge(P0_JWT_LEEWAY_SECONDS="9999")
    (record,) = caplog.records
    entry = json.loads(CloudLoggingFormatter().format(record))
    assert (entry["severity"], entry["message"], entry["variable"]) == (
        "CRITICAL",
        "p0_configuration_error",
        "P0_JWT_LEEWAY_SECONDS",
    )
    assert "9999" not in entry["problem"]


def log_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(CloudLoggingFormatter().format(record)) for record in caplog.records]


def test_numeric_string_dates_get_a_json_401_not_an_html_500(edge: Edge) -> None:
    issued = int(datetime.now(tz=UTC).timestamp())
    response = edge.post(authorization=f"Bearer {token(iat=str(issued), exp=str(issued + 60))}")
    assert (response.status_code, response.mimetype) == (401, "application/json")
    assert error_of(response)["reason"] == "malformed_token"
    assert edge.nothing_written()


def test_a_re_encoded_token_is_refused_at_the_edge(edge: Edge) -> None:
    response = edge.post(authorization=f"Bearer {padded(token())}")
    assert (response.status_code, error_of(response)["reason"]) == (401, "malformed_token")


class ExplodingPublisher(InMemoryPublisher):
    def publish(self, data: bytes, attributes: Any) -> str:
        raise RuntimeError(f"bug while handling {data[:40]!r} with {len(attributes)} attributes")


def test_an_unexpected_exception_is_a_json_500_logged_by_class_only(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    edge.publisher = ExplodingPublisher()
    raw_token = token()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        response = edge.post(authorization=f"Bearer {raw_token}")
    assert (response.status_code, response.mimetype) == (500, "application/json")
    assert response.get_json() == {"error": {"code": "internal_error", "message": "internal error"}}
    bug, summary = log_lines(caplog)
    assert (bug["severity"], bug["message"], bug["exceptionClass"]) == (
        "ERROR",
        "p0_internal_error",
        "RuntimeError",
    )
    assert any("publish" in frame for frame in bug["where"])
    assert (summary["httpStatus"], summary["outcome"], summary["reason"]) == (
        500,
        "error",
        "internal_error",
    )
    logged = caplog.text + json.dumps([bug, summary])
    assert "bug while handling" not in logged
    assert raw_token not in logged
    assert "preapproval" not in logged.replace("preapproval-created", "")


def test_failing_to_build_the_google_clients_is_a_retryable_503() -> None:
    attempts: list[int] = []
    ledger, audit = InMemoryTokenLedger(), InMemoryAuditLog()
    publisher, quarantine = InMemoryPublisher(), InMemoryQuarantine()

    def backends(_: Settings) -> Backends:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("metadata server unreachable")
        return Backends(ledger, audit, publisher, quarantine)

    edge = Edge(backends=backends)
    first = edge.post()
    assert (first.status_code, first.headers["Retry-After"]) == (503, "30")
    assert error_of(first)["reason"] == "clients_unavailable"
    assert edge.post().status_code == 200  # the next request builds them again
    assert len(audit.records) == 1


def test_unpinned_issuer_and_audience_are_named_once_at_cold_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        Edge(P0_JWT_ISSUER="", P0_JWT_AUDIENCE="")
    (warning,) = log_lines(caplog)
    assert (warning["severity"], warning["message"], warning["claims"]) == (
        "WARNING",
        "p0_claims_unpinned",
        ["iss", "aud"],
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        Edge()
    assert caplog.records == []


def test_accepted_reuse_is_one_warning_line_never_the_alert(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rsa_key = keypair("RS256")
    issued = int(datetime.now(tz=UTC).timestamp())
    edge = Edge(
        clock=lambda: datetime.fromtimestamp(issued + 1, tz=UTC),
        P0_PUBLIC_KEYS=rsa_key.public_pem.decode(),
    )
    raw = token(rsa_key, iat=issued, exp=issued + 300)
    assert edge.post(authorization=f"Bearer {raw}").status_code == 200
    other = json.dumps({**json.loads(PREAPPROVAL_CREATED), "name": "Other"}).encode()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        response = edge.post(other, authorization=f"Bearer {raw}")
    assert response.status_code == 200
    reuse, summary = log_lines(caplog)
    assert (reuse["severity"], reuse["message"], reuse["algorithm"]) == (
        "WARNING",
        "p0_token_reuse_accepted",
        "RS256",
    )
    assert reuse["eventId"] == summary["eventId"] != reuse["firstEventId"]
    assert (summary["severity"], summary["tokenReuse"]) == ("INFO", True)
    assert raw not in caplog.text


def test_quarantine_outage_keeps_the_422_and_logs_an_error(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    edge.quarantine.unavailable = True
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        response = edge.post(json.dumps({"id": "n", "name": "x", "eventType": "e"}).encode())
    assert response.status_code == 422
    failed, summary = log_lines(caplog)
    assert (failed["severity"], failed["message"], failed["reason"]) == (
        "ERROR",
        "p0_quarantine_failed",
        "schema_violation",
    )
    assert (summary["httpStatus"], summary["reason"]) == (422, "schema_violation")


def test_unstorable_record_is_422_and_quarantined(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    edge.audit.refuse_as_invalid = True
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        response = edge.post()
    assert response.status_code == 422
    assert error_of(response)["code"] == "unstorable_record"
    kept, summary = log_lines(caplog)
    assert (kept["message"], kept["reason"], kept["quarantineStatus"]) == (
        "p0_quarantined",
        "unstorable",
        "stored",
    )
    assert summary["quarantineId"] == kept["quarantineId"]
    assert edge.publisher.messages == []


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"P0_JWT_ALGORITHMS": "RS256"}, "P0_JWT_ALGORITHMS"),  # the ES256 key could verify none
        ({"P0_JWT_ALGORITHMS": "HS256"}, "P0_JWT_ALGORITHMS"),
        ({"P0_TOKEN_REUSE": "sometimes"}, "P0_TOKEN_REUSE"),
        ({"P0_TOKEN_BURST_SECONDS": "600"}, "P0_TOKEN_BURST_SECONDS"),
        ({"QUARANTINE_MAX_PER_TOKEN": "0"}, "QUARANTINE_MAX_PER_TOKEN"),
    ],
)
def test_new_settings_fail_fast_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Edge(**env)  # type: ignore[arg-type]  # only environment strings here
    assert caught.value.variable == variable
    for value in env.values():
        assert value not in caught.value.problem


def test_a_lazy_value_built_in_the_background_is_ready_before_the_first_call() -> None:
    built = threading.Event()

    def build() -> str:
        built.set()
        return "clients"

    lazy = Lazy(build)
    lazy.build_in_background(lambda failure: pytest.fail(str(failure)))
    assert built.wait(timeout=10)
    assert lazy() == "clients"


def test_a_failed_background_build_is_reported_and_the_next_call_builds_again() -> None:
    attempts: list[int] = []
    reported: list[ReceiverError] = []
    done = threading.Event()

    def build() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise DownstreamUnavailableError("clients_unavailable", detail="OSError")
        return "clients"

    def report(failure: ReceiverError) -> None:
        reported.append(failure)
        done.set()

    lazy = Lazy(build)
    lazy.build_in_background(report)
    assert done.wait(timeout=10)
    assert [error.log_fields()["detail"] for error in reported] == ["OSError"]
    assert lazy() == "clients"
    assert len(attempts) == 2
