"""openapi.yaml is current, and says what the models and error classes say."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import yaml

import p0_receiver.usecases.deliver  # noqa: F401 - its errors join the tree the document must cover
from p0_receiver.core.errors import (
    DownstreamUnavailableError,
    InternalError,
    ReceiverError,
    RequestRejectedError,
)
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED, REQUEST_APPROVED
from tests.openapi_document import DOCUMENT_PATH, render

DOCUMENT: dict[str, Any] = yaml.safe_load(DOCUMENT_PATH.read_text(encoding="utf-8"))
OPERATION = DOCUMENT["paths"]["/"]["post"]


def test_committed_document_is_the_generated_one() -> None:
    assert DOCUMENT_PATH.read_text(encoding="utf-8") == render(), "stale: run `make openapi`"


def _subclasses(root: type[ReceiverError]) -> Iterator[type[ReceiverError]]:
    for child in root.__subclasses__():
        yield child
        yield from _subclasses(child)


def _documented(status: int) -> dict[str, dict[str, Any]]:
    """The error bodies documented for ``status``, by their ``code``."""
    schema = OPERATION["responses"][str(status)]["content"]["application/json"]["schema"]
    refs = schema.get("oneOf", [schema])
    bodies = [
        DOCUMENT["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]["properties"]["error"]
        for ref in refs
    ]
    return {body["properties"]["code"]["const"]: body for body in bodies}


@pytest.mark.parametrize(
    "error",
    [*_subclasses(RequestRejectedError), DownstreamUnavailableError, InternalError],
    ids=lambda error: error.__name__,
)
def test_every_answered_error_is_documented_with_its_status_and_code(
    error: type[ReceiverError],
) -> None:
    # Read through the class attributes every error declares, so a new rejection (a subclass
    # of RequestRejectedError) fails here until the document describes it.
    assert error.code in _documented(error.status)


def test_no_status_is_documented_that_no_error_answers() -> None:
    answered = {error.status for error in _subclasses(ReceiverError)} | {200}
    assert {int(status) for status in OPERATION["responses"]} <= answered


def _request_validator() -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(
        {
            "$ref": "#/components/schemas/P0Notification",
            "components": DOCUMENT["components"],
        }
    )


@pytest.mark.parametrize("sample", [PREAPPROVAL_CREATED, REQUEST_APPROVED], ids=["pre", "req"])
def test_the_sample_deliveries_are_valid_requests(sample: bytes) -> None:
    assert _request_validator().is_valid(json.loads(sample))


def test_preapproval_data_is_validated_in_full_and_other_events_are_open() -> None:
    document = json.loads(PREAPPROVAL_CREATED)
    del document["data"]["approver"]["email"]
    assert not _request_validator().is_valid(document)
    document["eventType"] = "request-approved"  # request events' data is an open object
    assert _request_validator().is_valid(document)
    document["eventType"] = "access-reviewed"
    document["data"] = {"novel": [1, {"x": None}]}
    assert _request_validator().is_valid(document)
    del document["name"]  # the envelope stays strict for every type
    assert not _request_validator().is_valid(document)
