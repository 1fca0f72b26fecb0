"""The directly encoded writes are byte-for-byte the client library's own, for any record."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers as library_helpers
from hypothesis import given, settings
from hypothesis import strategies as st

from p0_receiver.adapters import firestore_writes
from p0_receiver.core.events import parse_notification
from p0_receiver.core.record import RecordField, build_audit_record
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from tests.unit.audit_records import NOW, TOKEN
from tests.unit.test_properties import keys

SCALE = max(1, int(os.environ.get("P0_PROPERTY_SCALE", "1")))
CLIENT = firestore.Client(
    project="writes",
    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
)
PATH = "p0_notifications/" + "ab" * 32
INT64 = 2**63 - 1

moments = st.datetimes(
    min_value=datetime(1, 1, 1),  # noqa: DTZ001 (naive on purpose: the library reads it as UTC)
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=cast(
        "st.SearchStrategy[None]",  # hypothesis types the tzinfo strategy too narrowly
        st.none()
        | st.just(UTC)
        | st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23))),
    ),
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-INT64 - 1, INT64)
    | st.floats()
    | st.text()
    | st.binary(max_size=64)
    | moments
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(keys, inner, max_size=5)
    ),
    max_leaves=20,
)
records = st.dictionaries(keys, values, max_size=12)


def serialized(write: Any) -> bytes:
    return bytes(write.SerializeToString(deterministic=True))


def library_create(data: dict[str, Any]) -> bytes:
    (write,) = library_helpers.pbs_for_create(f"{CLIENT._database_string}/documents/{PATH}", data)
    return serialized(write._pb)


@settings(max_examples=150 * SCALE, deadline=None)
@given(records)
def test_a_create_is_the_library_create(data: dict[str, Any]) -> None:
    try:
        expected = library_create(data)
    except ValueError as refusal:  # an empty field name, a lone surrogate
        with pytest.raises(type(refusal)):
            serialized(firestore_writes.create_write(CLIENT, PATH, data))
    else:
        assert serialized(firestore_writes.create_write(CLIENT, PATH, data)) == expected


def test_a_real_audit_record_encodes_like_the_library() -> None:
    audit_record = dict(
        build_audit_record(
            parse_notification(PREAPPROVAL_CREATED), TOKEN, received_at=NOW, retention_days=30
        )
    )
    assert len(audit_record) > 30
    written = firestore_writes.create_write(CLIENT, PATH, audit_record)
    assert serialized(written) == library_create(audit_record)


def test_types_the_encoder_does_not_know_go_to_the_library() -> None:
    data = {
        "nanos": DatetimeWithNanoseconds(  # type: ignore[no-untyped-call]
            2026, 1, 2, 3, 4, 5, nanosecond=123456789, tzinfo=UTC
        ),
        "point": firestore.GeoPoint(1.5, -2.5),
        "set": frozenset({"only"}),
    }
    assert serialized(firestore_writes.create_write(CLIENT, PATH, data)) == library_create(data)


def test_a_value_neither_knows_is_refused_by_both() -> None:
    with pytest.raises(TypeError):
        library_create({"x": object()})
    with pytest.raises(TypeError):
        firestore_writes.create_write(CLIENT, PATH, {"x": object()})


def test_mark_published_is_the_library_update() -> None:
    fields = {
        RecordField.PUBLISH_STATUS: "published",
        RecordField.MESSAGE_ID: "17",
        RecordField.PUBLISHED_AT: NOW,
        RecordField.LAST_PUBLISH_ATTEMPT_AT: NOW,
    }
    ours = firestore_writes.update_write(
        CLIENT, PATH, fields, increments={RecordField.PUBLISH_ATTEMPTS: 1}
    )
    (library,) = library_helpers.pbs_for_update(
        f"{CLIENT._database_string}/documents/{PATH}",
        {**fields, RecordField.PUBLISH_ATTEMPTS: firestore.Increment(1)},
        None,
    )
    assert serialized(ours) == serialized(library._pb)


@pytest.mark.parametrize("name", ["a.b", "with space", "`quoted`", "1st", ""])
def test_an_update_refuses_field_names_that_would_need_quoting(name: str) -> None:
    with pytest.raises(ValueError, match="plain top-level field names"):
        firestore_writes.update_write(CLIENT, PATH, {name: 1}, increments={})
    with pytest.raises(ValueError, match="plain top-level field names"):
        firestore_writes.update_write(CLIENT, PATH, {"ok": 1}, increments={name: 1})
