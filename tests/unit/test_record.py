"""The audit record and message attributes built from a delivery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudevents.http import from_http

from p0_receiver.core.events import parse_notification
from p0_receiver.core.record import (
    AuditRecord,
    RecordField,
    TokenReuseNote,
    build_audit_record,
    lift_fields,
    message_attributes,
    rfc3339,
)
from p0_receiver.core.tokens import VerifiedToken
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED, REQUEST_APPROVED

RECEIVED = datetime(2026, 11, 29, 12, 0, 0, 123000, tzinfo=UTC)
TOKEN = VerifiedToken(
    header={"alg": "ES256", "kid": "k"},
    claims={"iss": "p0", "sub": "s", "aud": ["a", "b"], "iat": 1, "exp": 2, "x": [[1], [2]]},
    fingerprint="f" * 64,
    expires_at=RECEIVED,
    key_thumbprint="NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
    key_id="k",
)
P0_TIME = datetime(1994, 10, 21, 10, 30, tzinfo=UTC)


def record_for(raw: bytes, retention_days: int = 400) -> AuditRecord:
    return build_audit_record(
        parse_notification(raw), TOKEN, received_at=RECEIVED, retention_days=retention_days
    )


def test_documented_example_record() -> None:
    record = record_for(PREAPPROVAL_CREATED)
    assert record["eventType"] == "preapproval-created"
    assert record["notifierId"] == "my-notifier-service"
    assert record["objectId"] == "07ZmVeUxSc4LyhrGhlzK"
    assert record["principal"] == "john.smith@p0.dev"
    assert record["approver"] == "john.smith@p0.dev"
    assert record["permissionName"] == "demo-node-1"
    assert record["reason"] == "Need to give a big customer a fancy demo"
    assert record["occurredAt"] == P0_TIME
    assert record["occurredAtSource"] == "p0"
    assert record["p0Times"] == {
        "startsAt": P0_TIME,
        "endsAt": P0_TIME,
        "createdAt": P0_TIME,
        "approvalTimestamp": P0_TIME,
    }
    assert record["body"] == PREAPPROVAL_CREATED
    assert record["deliveryCount"] == 1
    assert record["publishStatus"] == "received"
    assert record["expireAt"] == RECEIVED + timedelta(days=400)
    assert record["token"] == {
        "header": {"alg": "ES256", "kid": "k"},
        # Firestore cannot nest arrays: such claims are kept as JSON text.
        "claims": {
            "iss": "p0",
            "sub": "s",
            "aud": ["a", "b"],
            "iat": 1,
            "exp": 2,
            "x": "[[1], [2]]",
        },
        "fingerprint": "f" * 64,
    }


def test_request_event_lifts_requestor_and_approval_details() -> None:
    record = record_for(REQUEST_APPROVED)
    assert (record["requestor"], record["approver"], record["requestStatus"]) == (
        "jane.doe@p0.dev",
        "john.smith@p0.dev",
        "APPROVED",
    )
    assert record["approvalSource"] == "slack"
    assert record["occurredAt"] == P0_TIME  # lastUpdatedTimestamp


def test_zero_retention_keeps_forever() -> None:
    assert "expireAt" not in record_for(PREAPPROVAL_CREATED, retention_days=0)


def test_event_without_p0_time_falls_back_to_received_time() -> None:
    raw = json.dumps({"id": "n", "name": "", "eventType": "x", "data": {}}).encode()
    record = record_for(raw)
    assert (record["occurredAt"], record["occurredAtSource"]) == (RECEIVED, "receivedAt")


def test_lifting_never_trusts_types() -> None:
    lifted = lift_fields({"id": 5, "principal": ["x"], "approver": "bob", "createdAt": True})
    assert (lifted.object_id, lifted.principal, lifted.approver, lifted.p0_times) == (
        None,
        None,
        None,
        {},
    )


def test_attributes_follow_the_contract() -> None:
    record = record_for(PREAPPROVAL_CREATED)
    assert message_attributes(record) == {
        "eventId": record["eventId"],
        "eventType": "preapproval-created",
        "notifierId": "my-notifier-service",
        "objectId": "07ZmVeUxSc4LyhrGhlzK",
        "principal": "john.smith@p0.dev",
        "receivedAt": "2026-11-29T12:00:00.123Z",
        "schemaVersion": "1",
        "ce-specversion": "1.0",
        "ce-id": record["eventId"],
        "ce-source": "//p0.dev/notifiers/my-notifier-service",
        "ce-type": "dev.p0.preapproval-created",
        "ce-time": rfc3339(record["occurredAt"]),
        "ce-subject": "07ZmVeUxSc4LyhrGhlzK",
        "ce-datacontenttype": "application/json",
    }
    assert message_attributes(record, replay=True)["replay"] == "true"


def _cloudevent(data: bytes, attributes: dict[str, str]) -> Any:
    """The message as a CloudEvents SDK reads an event in binary mode: every ce- attribute a
    context attribute, datacontenttype as the content type, the data as it is."""
    headers = {name: value for name, value in attributes.items() if name.startswith("ce-")}
    headers["content-type"] = headers.pop("ce-datacontenttype")
    return from_http(headers, data)


def test_the_message_is_a_cloudevent_the_sdk_reads() -> None:
    record = record_for(PREAPPROVAL_CREATED)
    event = _cloudevent(PREAPPROVAL_CREATED, message_attributes(record))
    assert event["specversion"] == "1.0"
    assert event["id"] == record["eventId"]
    assert event["source"] == "//p0.dev/notifiers/my-notifier-service"
    assert event["type"] == "dev.p0.preapproval-created"
    assert event["time"] == rfc3339(record["occurredAt"])
    assert event["subject"] == "07ZmVeUxSc4LyhrGhlzK"
    assert event["datacontenttype"] == "application/json"
    assert event.data == json.loads(PREAPPROVAL_CREATED)  # P0's body, as sent


def test_a_hostile_notifier_id_stays_inside_the_source() -> None:
    document = json.loads(PREAPPROVAL_CREATED)
    raw = json.dumps({**document, "id": "a/b?c#d%"}).encode()
    event = _cloudevent(raw, message_attributes(record_for(raw)))
    assert event["source"] == "//p0.dev/notifiers/a%2Fb%3Fc%23d%25"


def test_oversized_attribute_values_are_left_out() -> None:
    raw = json.dumps(
        {"id": "n", "name": "", "eventType": "x", "data": {"principal": "p" * 2000}}
    ).encode()
    assert "principal" not in message_attributes(record_for(raw))


def test_rfc3339_is_utc_with_z() -> None:
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"


def test_lifted_times_are_bounded_in_number_and_name_length() -> None:
    data: dict[str, object] = {f"custom{n}At": 1_700_000_000_000 + n for n in range(100)}
    data["x" * 500 + "At"] = 1_700_000_000_000
    data["approver"] = {"approvalTimestamp": 1_700_000_000_000}
    times = lift_fields(data).p0_times
    assert len(times) == 32
    assert "approvalTimestamp" in times
    assert max(len(name) for name in times) <= 64


def test_reuse_flag_is_kept_on_the_record_and_the_message() -> None:
    notification = parse_notification(PREAPPROVAL_CREATED)
    reuse: TokenReuseNote = {"firstEventId": "a" * 64, "fingerprint": "b" * 64}
    record = build_audit_record(
        notification, TOKEN, received_at=RECEIVED, retention_days=0, token_reuse=reuse
    )
    assert record["tokenReuse"] == reuse
    assert message_attributes(record)["tokenReuse"] == "true"


def test_record_field_names_are_exactly_the_typed_record_keys() -> None:
    names = {value for name, value in vars(RecordField).items() if name.isupper()}
    assert names == AuditRecord.__required_keys__ | AuditRecord.__optional_keys__
    record = record_for(PREAPPROVAL_CREATED)
    assert set(record) == names - {
        RecordField.TOKEN_REUSE,
        RecordField.RELEASED_FROM,
        RecordField.FINDINGS,
    }
