"""Schemathesis against a real functions-framework server on the emulators, from openapi.yaml.

Cases come from the document: schemathesis's coverage cases (about 300, fixed by the document)
and ``P0_FUZZ_EXAMPLES`` generated ones per test (default ``CI_EXAMPLES``), positive and
negative; each signed case carries a fresh dev-signed token, as P0's deliveries do. Every answer
must match the document, no 5xx but 503, every 4xx JSON. Sending stops after ``P0_FUZZ_SECONDS``
per test; ``make fuzz`` runs a longer one.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from p0_receiver.devtools.simulator import post_delivery
from p0_receiver.devtools.stack import FunctionServer, function_server
from tests.conftest import Stack
from tests.openapi_document import DOCUMENT_PATH
from tests.support import token

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CI_EXAMPLES = 50
CI_SECONDS = 30.0
EXAMPLES = int(os.environ.get("P0_FUZZ_EXAMPLES", CI_EXAMPLES))
SECONDS = float(os.environ.get("P0_FUZZ_SECONDS", CI_SECONDS))
# A slow machine may stop early at the time cap, but a run that sent next to nothing proves
# nothing: at least this share of the examples must reach the server.
MIN_SHARE_SENT = 0.25
REQUEST_TIMEOUT_SECONDS = 15

SCHEMA = schemathesis.openapi.from_path(DOCUMENT_PATH)
Case = schemathesis.Case[Any]


def no_server_error_but_unavailable(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    """503 is the contract's retryable answer; any other 5xx is a defect."""
    if response.status_code >= 500 and response.status_code != 503:
        raise AssertionError(f"server error {response.status_code}: {response.content[:200]!r}")


def client_errors_are_json(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    if not 400 <= response.status_code < 500:
        return
    media_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    if media_type != "application/json":
        raise AssertionError(f"{response.status_code} answered as {media_type!r}, not JSON")
    body = json.loads(response.content)
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        raise AssertionError(f"{response.status_code} without an error object")


CHECKS = [
    no_server_error_but_unavailable,
    client_errors_are_json,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class Budget:
    """Counts what reached the server; stops sending once the time cap has passed."""

    seconds: float
    started: float = 0.0
    finished: float = 0.0
    sent: int = 0
    statuses: dict[str, int] | None = None

    def open(self) -> bool:
        if not self.started:
            self.started = time.monotonic()
        return time.monotonic() - self.started < self.seconds

    def count(self, response: schemathesis.Response) -> None:
        self.finished = time.monotonic()
        self.sent += 1
        outcome = str(response.status_code)
        if response.status_code in (401, 503):
            outcome += f" {response.json()['error']['reason']}"
        self.statuses = self.statuses or {}
        self.statuses[outcome] = self.statuses.get(outcome, 0) + 1


@pytest.fixture(scope="module")
def fuzz_server(emulators: dict[str, str]) -> Iterator[FunctionServer]:
    world = Stack(project=f"fuzz-{uuid.uuid4().hex[:8]}", emulator_env=emulators)
    world.create_topic()
    # One JSON line per request would bury pytest's own output.
    with function_server(world.function_env(), stdout=subprocess.DEVNULL) as server:
        yield server


def _budget(request: pytest.FixtureRequest, name: str) -> Iterator[Budget]:
    budget = Budget(SECONDS)
    yield budget
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"fuzz {name}: {budget.sent} cases sent in "
            f"{budget.finished - budget.started:.1f} s, statuses {budget.statuses}"
        )
    assert budget.sent >= EXAMPLES * MIN_SHARE_SENT, budget


@pytest.fixture(scope="module")
def signed_budget(request: pytest.FixtureRequest) -> Iterator[Budget]:
    yield from _budget(request, "signed")


@pytest.fixture(scope="module")
def unsigned_budget(request: pytest.FixtureRequest) -> Iterator[Budget]:
    yield from _budget(request, "unsigned")


def _send(
    case: Case, server: FunctionServer, budget: Budget, headers: dict[str, str]
) -> schemathesis.Response | None:
    if not budget.open():
        return None
    response = case.call_and_validate(
        base_url=server.url.rstrip("/"),
        headers=headers,
        checks=CHECKS,
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    budget.count(response)
    return response


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_signed_deliveries_get_documented_answers(
    case: Case, fuzz_server: FunctionServer, signed_budget: Budget
) -> None:
    # A fresh token per case: ES256 signatures are randomized, so no case replays another's.
    _send(case, fuzz_server, signed_budget, {"Authorization": f"Bearer {token()}"})


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_unsigned_deliveries_get_documented_401s(
    case: Case, fuzz_server: FunctionServer, unsigned_budget: Budget
) -> None:
    response = _send(case, fuzz_server, unsigned_budget, {})
    if response is not None:
        # Without a valid token nothing gets past the method and token checks, whatever the
        # body (schemathesis also tries other methods and garbled Authorization headers).
        assert response.status_code in (401, 405), response.content[:200]


def test_lone_surrogate_in_a_key_gets_a_client_error(fuzz_server: FunctionServer) -> None:
    body = b'{"id":"n1","name":"N","eventType":"access-reviewed","data":{"\\udc00":1}}'
    answer = post_delivery(fuzz_server.url, body, token=token())
    assert answer.headers["Content-Type"] == "application/json"
    assert (answer.status, answer.json()["error"]["code"]) in {
        (400, "malformed_json"),
        (422, "schema_violation"),
    }
