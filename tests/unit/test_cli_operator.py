"""The operator CLI without emulators: settings, parsing, integrity, and every error path."""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from google.api_core import exceptions as google_exceptions

from p0_receiver.adapters.clients import AuditBackends, google_audit_backends
from p0_receiver.adapters.firestore import FirestoreAuditReader
from p0_receiver.core.errors import ConfigurationError
from p0_receiver.core.events import parse_notification
from p0_receiver.core.filters import RecordFilter, parse_duration, parse_moment
from p0_receiver.core.integrity import check_integrity
from p0_receiver.core.queries import AUDIT_LIST, QUERY_SHAPES, Direction, QueryShape
from p0_receiver.core.record import AuditRecord, build_audit_record
from p0_receiver.core.tokens import VerifiedToken
from p0_receiver.devtools.emulators import free_port
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED, REQUEST_APPROVED
from p0_receiver.entrypoints.cli import main
from p0_receiver.entrypoints.cli.operator import OperatorContext
from p0_receiver.settings import load_operator_settings, load_settings
from p0_receiver.usecases.audit import views
from p0_receiver.usecases.audit.review import review_lifecycles

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
OPERATOR_ENV = {"GOOGLE_CLOUD_PROJECT": "acme-audit"}


def run(args: list[str], context: OperatorContext, **env: str | None) -> Result:
    return CliRunner().invoke(main, args, obj=context, env=env)


# --- settings -------------------------------------------------------------------------------


def test_operator_settings_need_no_key_material() -> None:
    settings = load_operator_settings({**OPERATOR_ENV, "FIRESTORE_COLLECTION": "audit"})
    assert (settings.project, settings.firestore_collection) == ("acme-audit", "audit")
    assert settings.pubsub_topic is None
    with pytest.raises(ConfigurationError) as missing:
        _ = settings.topic_path
    assert missing.value.variable == "PUBSUB_TOPIC"


def test_receiver_still_requires_keys_and_topic() -> None:
    with pytest.raises(ConfigurationError) as no_key:
        load_settings({**OPERATOR_ENV, "PUBSUB_TOPIC": "events"})
    assert no_key.value.variable == "P0_PUBLIC_KEYS"
    with pytest.raises(ConfigurationError) as no_topic:
        load_settings({**OPERATOR_ENV, "P0_PUBLIC_KEYS": "x"})
    assert no_topic.value.variable == "PUBSUB_TOPIC"


def test_missing_project_is_a_usage_error_naming_the_variable() -> None:
    result = run(["audit", "query"], OperatorContext(environ={}))
    assert result.exit_code == 2
    assert "configuration: GOOGLE_CLOUD_PROJECT: Field required" in result.stderr


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_moment(text, now=NOW) == NOW - expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T08:30:00Z", datetime(2024, 5, 1, 8, 30, tzinfo=UTC)),
        ("2024-05-01T10:30:00+02:00", datetime(2024, 5, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_iso_moments_are_utc(text: str, expected: datetime) -> None:
    assert parse_moment(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "7 days", "-1d", "2024-13-01", ""])
def test_bad_moments_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="neither ISO-8601"):
        parse_moment(text, now=NOW)


def test_record_filter_refuses_what_no_index_covers() -> None:
    with pytest.raises(ValueError, match="cannot filter on"):
        RecordFilter(equals={"reason": "x"})
    with pytest.raises(ValueError, match="publish status"):
        RecordFilter(equals={"publishStatus": "lost"})


# --- the query catalogue ----------------------------------------------------------------------


class RecordingReader:
    def __init__(self) -> None:
        self.shapes: list[QueryShape] = []

    def get(self, event_id: str) -> AuditRecord | None:
        raise AssertionError(f"unexpected read of {event_id}")

    def scan(self, shape: QueryShape, **_: Any) -> Iterator[AuditRecord]:
        self.shapes.append(shape)
        return iter(())


def test_every_view_uses_a_catalogued_shape() -> None:
    reader = RecordingReader()
    list(views.query_records(reader, RecordFilter(equals={"principal": "a"})))
    list(views.timeline(reader, "R1"))
    list(views.pending_records(reader, received_before=NOW))
    list(views.window(reader, since=NOW, until=None))
    views.records_with_id_prefix(reader, "0123abcd", limit=2)
    policy = load_operator_settings({"GOOGLE_CLOUD_PROJECT": "p"}).review_policy()
    list(review_lifecycles(reader, start=NOW, end=NOW, now=NOW, policy=policy))
    assert reader.shapes == list(QUERY_SHAPES)


class FakeQuery:
    """Stands in for a Firestore query; streaming fails the way production does."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure
        self.calls: list[str] = []

    def collection(self, _: str) -> FakeQuery:
        return self

    def where(self, **_: Any) -> FakeQuery:
        return self

    def order_by(self, field: str, **_: Any) -> FakeQuery:
        self.calls.append(f"order_by {field}")
        return self

    def limit(self, _: int) -> FakeQuery:
        return self

    def stream(self, **_: Any) -> Iterator[Any]:
        raise self.failure


def test_reader_refuses_a_shape_outside_the_catalogue() -> None:
    reader = FirestoreAuditReader(FakeQuery(RuntimeError()), "audit", 1.0)  # type: ignore[arg-type]
    rogue = QueryShape("rogue", ("reason",), "receivedAt", Direction.DESCENDING)
    with pytest.raises(ValueError, match="not in the catalogue"):
        reader.scan(rogue, equals={})
    with pytest.raises(ValueError, match="has no filter on"):
        reader.scan(AUDIT_LIST, equals={"reason": "x"})


def test_missing_index_names_the_index_and_terraform() -> None:
    failure = google_exceptions.FailedPrecondition(  # type: ignore[no-untyped-call]
        "The query requires an index. You can create it here: https://console.example/index"
    )
    context = OperatorContext(
        environ=OPERATOR_ENV,
        connect=lambda *_: audit_backends_over(FakeQuery(failure)),
    )
    result = run(["audit", "query", "--principal", "a@x", "--type", "request-approved"], context)
    assert result.exit_code == 1
    assert (
        "needs the composite index(es) (eventType ASCENDING, receivedAt DESCENDING), "
        "(principal ASCENDING, receivedAt DESCENDING)" in result.stderr
    )
    assert "terraform/firestore.tf" in result.stderr
    assert "terraform apply" in result.stderr
    assert "Traceback" not in result.output


def audit_backends_over(client: FakeQuery) -> Any:
    return AuditBackends(
        reader=FirestoreAuditReader(client, "audit", 1.0),  # type: ignore[arg-type]
        audit_log=None,  # type: ignore[arg-type]
    )


# --- credentials and connectivity -------------------------------------------------------------


def test_no_credentials_says_how_to_authenticate(tmp_path: Any) -> None:
    result = run(
        ["audit", "query"],
        OperatorContext(environ=OPERATOR_ENV),
        FIRESTORE_EMULATOR_HOST=None,
        PUBSUB_EMULATOR_HOST=None,
        GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "missing.json"),
    )
    assert result.exit_code == 1
    assert "no usable Google credentials (DefaultCredentialsError" in result.stderr
    assert "gcloud auth application-default login" in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_firestore_fails_with_a_message() -> None:
    environ = {**OPERATOR_ENV, "FIRESTORE_TIMEOUT_SECONDS": "0.5"}
    result = run(
        ["audit", "show", "0" * 64],
        OperatorContext(environ=environ, connect=google_audit_backends),
        FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{free_port()}",
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Firestore failed:")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("force", [(), ("--force",)])
def test_a_failed_export_leaves_no_file_behind(tmp_path: Path, force: tuple[str, ...]) -> None:
    target = tmp_path / "audit.jsonl"
    if force:
        target.write_text("previous export\n")
    environ = {**OPERATOR_ENV, "FIRESTORE_TIMEOUT_SECONDS": "0.5"}
    result = run(
        ["audit", "export", "--output", str(target), *force],
        OperatorContext(environ=environ, connect=google_audit_backends),
        FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{free_port()}",
    )
    assert result.exit_code == 1
    assert "Firestore failed" in result.stderr
    # Nothing half-written: no new file, the previous one untouched, no temporary left.
    assert [p.name for p in tmp_path.iterdir()] == (["audit.jsonl"] if force else [])
    if force:
        assert target.read_text() == "previous export\n"


# --- integrity ---------------------------------------------------------------------------------

RECEIVED = datetime(2024, 5, 10, 12, 0, 0, 123000, tzinfo=UTC)
TOKEN = VerifiedToken(
    header={"alg": "ES256", "kid": "k"},
    claims={"iss": "p0", "sub": "s", "aud": "a", "iat": 1, "exp": 2},
    fingerprint="f" * 64,
    expires_at=RECEIVED,
    key_thumbprint="NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
    key_id="k",
)
NO_P0_TIME = json.dumps({"id": "n", "name": "", "eventType": "x", "data": {"principal": "p"}})


def stored(raw: bytes = REQUEST_APPROVED) -> dict[str, Any]:
    """The record the receiver writes for ``raw``."""
    record: dict[str, Any] = dict(
        build_audit_record(parse_notification(raw), TOKEN, received_at=RECEIVED, retention_days=400)
    )
    return record


@pytest.mark.parametrize("raw", [PREAPPROVAL_CREATED, REQUEST_APPROVED, NO_P0_TIME.encode()])
def test_integrity_of_an_untouched_record(raw: bytes) -> None:
    report = check_integrity(stored(raw))
    assert report.ok, report.problems
    assert report.fields_match_body


def test_integrity_ignores_what_is_not_derived_from_the_body() -> None:
    # Delivery and publish history change after the write; newer writers add keys.
    record = stored() | {
        "publishStatus": "published",
        "messageId": "42",
        "deliveryCount": 3,
        "lastReceivedAt": RECEIVED + timedelta(hours=1),
        "tokenReuse": {"firstEventId": "0" * 64, "fingerprint": "f" * 64},
        "releasedFrom": "quarantine/abc",
    }
    assert check_integrity(record).ok


# Every searchable field, edited to a plausible lie.
EDITS = {
    "approver": "eve@corp.example",
    "approverName": "Eve",
    "approvalSource": "webapp",
    "reason": "approved by the CISO",
    "principal": "eve@corp.example",
    "requestor": "eve@corp.example",
    "objectId": "SOMETHING-ELSE",
    "permissionName": "roles/viewer",
    "permissionDescription": "read only",
    "integration": "aws",
    "access": "read",
    "requestStatus": "DENIED",
    "eventType": "request-denied",
    "notifierId": "other-notifier",
    "notifierName": "Other",
    "shapeCheck": "validated",
    "p0Times": {},
    "occurredAt": RECEIVED,
    "occurredAtSource": "receivedAt",
}


@pytest.mark.parametrize(("field", "lie"), list(EDITS.items()))
def test_integrity_names_an_edited_searchable_field(field: str, lie: Any) -> None:
    record = stored() | {field: lie}
    report = check_integrity(record)
    assert not report.ok
    assert (report.body_matches_digest, report.body_matches_event_id) == (True, True)
    assert report.mismatched_fields == (field,)
    assert report.problems == (f"fields that no longer match the body: {field}",)


def test_integrity_flags_a_searchable_field_removed_or_added() -> None:
    removed = stored()
    del removed["approver"]
    assert check_integrity(removed).mismatched_fields == ("approver",)
    # The pre-approval has no requestor: setting one is a lie too.
    added = stored(PREAPPROVAL_CREATED) | {"requestor": "eve@corp.example"}
    assert check_integrity(added).mismatched_fields == ("requestor",)


def test_integrity_needs_the_received_time_it_derived_from() -> None:
    record = stored(NO_P0_TIME.encode())
    del record["receivedAt"]
    assert check_integrity(record).mismatched_fields == ("receivedAt",)


def test_integrity_flags_an_altered_body() -> None:
    record = stored() | {"body": REQUEST_APPROVED.replace(b"jane.doe", b"eve")}
    report = check_integrity(record)
    assert (report.body_matches_digest, report.body_matches_event_id) == (False, False)
    # What the edited body now says no longer matches the recorded fields either.
    assert report.mismatched_fields == ("principal", "requestor")


def test_integrity_flags_a_rewritten_digest_the_event_id_still_catches() -> None:
    altered = REQUEST_APPROVED.replace(b"Investigate", b"Ignore")
    record = stored() | {"body": altered, "bodySha256": hashlib.sha256(altered).hexdigest()}
    report = check_integrity(record)
    assert (report.body_matches_digest, report.body_matches_event_id) == (True, False)
    assert report.problems == (
        "the body's canonical hash is not the record's eventId",
        "fields that no longer match the body: reason",
    )
    same_content = json.dumps(json.loads(REQUEST_APPROVED), indent=4).encode()
    respaced = stored() | {
        "body": same_content,
        "bodySha256": hashlib.sha256(same_content).hexdigest(),
    }
    assert check_integrity(respaced).ok


def test_integrity_of_a_body_that_is_no_longer_a_notification() -> None:
    report = check_integrity(stored() | {"body": b"[]"})
    assert not report.ok
    assert not report.fields_match_body
    assert "the body is not a P0 notification any more" in "; ".join(report.problems)


def test_local_run_prints_shell_lines_that_survive_hostile_values() -> None:
    from p0_receiver.entrypoints.cli.dev import shell_lines

    lines = shell_lines(
        {"GOOGLE_CLOUD_PROJECT": "p0-local", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1; rm -rf ~"},
        "http://127.0.0.1:8080/",
    )
    words = shlex.split(lines[0])
    assert words == [
        "export",
        "GOOGLE_CLOUD_PROJECT=p0-local",
        "FIRESTORE_EMULATOR_HOST=127.0.0.1:1; rm -rf ~",
    ]
    assert shlex.split(lines[1])[1:] == ["-m", "p0_receiver", "audit", "query", "--since", "1h"]
