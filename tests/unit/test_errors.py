"""The one error tree: every class says how it is answered, logged and shown to an operator."""

from __future__ import annotations

import inspect

import pytest

from p0_receiver.core import errors
from p0_receiver.core.errors import (
    ConfigurationError,
    DownstreamUnavailableError,
    ReceiverError,
    RequestRejectedError,
)
from p0_receiver.entrypoints.cli.operator import operator_failure

CLASSES = sorted(
    (
        kind
        for _, kind in inspect.getmembers(errors, inspect.isclass)
        if issubclass(kind, Exception)
    ),
    key=lambda kind: kind.__name__,
)
SEVERITIES = {"WARNING", "ERROR", "CRITICAL"}


def test_there_is_one_root() -> None:
    assert all(issubclass(kind, ReceiverError) for kind in CLASSES)


@pytest.mark.parametrize("kind", CLASSES, ids=lambda kind: kind.__name__)
def test_every_class_declares_status_code_severity_and_outcome(kind: type[ReceiverError]) -> None:
    assert kind.severity in SEVERITIES
    if issubclass(kind, RequestRejectedError):
        assert (400 <= kind.status < 500, kind.outcome, kind.retryable) == (True, "rejected", False)
    elif issubclass(kind, DownstreamUnavailableError):
        assert (kind.status, kind.outcome, kind.retryable) == (503, "unavailable", True)
    else:
        assert (kind.status, kind.outcome, kind.retryable) == (500, "error", False)


def test_the_cli_maps_the_tree_to_exit_codes() -> None:
    usage = operator_failure(ConfigurationError("PUBSUB_TOPIC", "not set"))
    assert (usage.exit_code, usage.message) == (2, "configuration: PUBSUB_TOPIC: not set")
    outage = operator_failure(
        DownstreamUnavailableError("audit_unavailable", "ServiceUnavailable", explanation="said")
    )
    assert (outage.exit_code, outage.message) == (1, "said")
