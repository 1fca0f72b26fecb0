"""Parsing P0 bodies: strict envelope, documented event, defensive request events, event ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p0_receiver.core.errors import MalformedJsonError, SchemaViolationError
from p0_receiver.core.events import ShapeCheck, event_id_for, parse_notification
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED, REQUEST_APPROVED

DOCUMENTED: dict[str, Any] = json.loads(PREAPPROVAL_CREATED)


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def violations(raw: bytes, **options: bool) -> list[dict[str, str]]:
    with pytest.raises(SchemaViolationError) as caught:
        parse_notification(raw, **options)
    return caught.value.violations


def test_documented_example_is_fully_validated() -> None:
    parsed = parse_notification(PREAPPROVAL_CREATED)
    assert parsed.shape is ShapeCheck.VALIDATED
    assert parsed.event_type == "preapproval-created"
    assert parsed.envelope.id == "my-notifier-service"
    assert parsed.raw is PREAPPROVAL_CREATED
    assert len(parsed.event_id) == 64


def test_event_id_ignores_formatting_and_key_order() -> None:
    reordered = json.dumps(dict(reversed(list(DOCUMENTED.items()))), indent=4).encode()
    assert (
        parse_notification(reordered).event_id == parse_notification(PREAPPROVAL_CREATED).event_id
    )


def test_event_id_changes_with_any_value() -> None:
    changed = {**DOCUMENTED, "data": {**DOCUMENTED["data"], "reason": "other"}}
    assert (
        parse_notification(body(changed)).event_id
        != parse_notification(PREAPPROVAL_CREATED).event_id
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    data=st.dictionaries(st.text(max_size=8), json_values, max_size=6),
    indent=st.none() | st.integers(0, 4),
)
def test_event_id_is_a_function_of_content_only(data: dict[str, Any], indent: int | None) -> None:
    document = {"id": "n", "name": "N", "eventType": "x-y", "data": data}
    compact = json.dumps(document, separators=(",", ":")).encode()
    pretty = json.dumps(document, indent=indent, sort_keys=True, ensure_ascii=False).encode()
    assert parse_notification(compact).event_id == parse_notification(pretty).event_id


def test_unknown_event_types_and_fields_are_accepted_and_kept() -> None:
    raw = body({**DOCUMENTED, "eventType": "access-reviewed", "extra": 1, "data": {"new": [1]}})
    parsed = parse_notification(raw)
    assert parsed.shape is ShapeCheck.UNRECOGNISED
    assert parsed.raw == raw
    assert parsed.envelope.model_extra == {"extra": 1}


def test_strict_mode_rejects_unknown_types() -> None:
    raw = body({**DOCUMENTED, "eventType": "access-reviewed"})
    assert violations(raw, reject_unknown_types=True) == [
        {"field": "eventType", "problem": "unknown event type (strict mode is on)"}
    ]


def test_request_events_are_lenient() -> None:
    assert parse_notification(REQUEST_APPROVED).shape is ShapeCheck.LENIENT


def test_request_event_with_unexpected_shape_is_kept_not_rejected() -> None:
    document = json.loads(REQUEST_APPROVED)
    document["data"]["approvalDetails"] = "approved in Slack"  # not the object we model
    assert parse_notification(body(document)).shape is ShapeCheck.UNRECOGNISED


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b'{"a": NaN}', id="nan"),
        pytest.param(b'{"id": "a", "id": "b"}', id="duplicate-keys"),
        pytest.param(b"[" * 100_000, id="deep-nesting"),
    ],
)
def test_malformed_json(raw: bytes) -> None:
    with pytest.raises(MalformedJsonError):
        parse_notification(raw)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        pytest.param([], "(body)", id="not-an-object"),
        pytest.param(
            {k: v for k, v in DOCUMENTED.items() if k != "eventType"}, "eventType", id="no-type"
        ),
        pytest.param({**DOCUMENTED, "id": "has space"}, "id", id="id-whitespace"),
        pytest.param({**DOCUMENTED, "data": "text"}, "data", id="data-not-object"),
        pytest.param({**DOCUMENTED, "name": 7}, "name", id="name-not-string"),
    ],
)
def test_envelope_violations_give_field_paths(document: Any, field: str) -> None:
    assert [v["field"] for v in violations(body(document))] == [field]


def test_preapproval_violations_give_nested_paths_and_never_values() -> None:
    data = dict(DOCUMENTED["data"])
    data["approver"] = {k: v for k, v in data["approver"].items() if k != "email"}
    data["startsAt"] = "SECRET-LOOKING-VALUE"
    found = violations(body({**DOCUMENTED, "data": data}))
    assert sorted(v["field"] for v in found) == ["data.approver.email", "data.startsAt"]
    assert "SECRET-LOOKING-VALUE" not in json.dumps(found)


def test_integers_beyond_i_json_are_a_schema_violation() -> None:
    raw = body({**DOCUMENTED, "eventType": "x-y", "data": {"n": 2**64}})
    assert violations(raw)[0]["field"] == "(body)"


def test_event_id_for_is_stable_hex() -> None:
    assert event_id_for({"b": 1, "a": [1, "x"]}) == event_id_for({"a": [1, "x"], "b": 1})


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":"n","name":"x","eventType":"e","data":{"\\ud800":1}}',
        b'{"id":"n","name":"x","eventType":"e","data":{"k":["\\udfff"]}}',
    ],
    ids=["lone-surrogate-key", "lone-surrogate-value"],
)
def test_escaped_lone_surrogates_are_not_i_json(body: bytes) -> None:
    with pytest.raises(SchemaViolationError) as caught:
        parse_notification(body)
    assert caught.value.violations == [
        {"field": "(body)", "problem": "not representable as I-JSON (RFC 7493)"}
    ]
