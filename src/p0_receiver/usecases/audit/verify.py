"""Audit log against the write-once archive: the comparison behind ``audit verify``.

Pure functions decide what one archived message and its record (or one published record and
the archived event ids) prove; ``verify_archive`` folds them over the ``ArchiveReader`` and
``AuditReader`` ports, for one window of time.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from p0_receiver.core.errors import SchemaViolationError
from p0_receiver.core.events import event_id_for
from p0_receiver.core.filters import RecordFilter
from p0_receiver.core.integrity import check_integrity
from p0_receiver.core.record import AuditRecord, PublishStatus, RecordField, rfc3339
from p0_receiver.ports import ArchivedMessage, ArchiveLocation, ArchiveReader, AuditReader
from p0_receiver.usecases.audit.views import query_records

# Objects the Cloud Storage subscription has not closed yet (terraform/evidence.tf closes one
# every 5 minutes) are not in the bucket: records published this recently are not expected
# there yet.
DEFAULT_LAG = timedelta(minutes=15)
EVENT_ID_ATTRIBUTE = "eventId"
# What the published-record scan reads (a projection: bodies never leave Firestore).
PUBLISHED_FIELDS = (
    RecordField.EVENT_ID,
    RecordField.PUBLISH_STATUS,
    RecordField.RECEIVED_AT,
    RecordField.PUBLISHED_AT,
)


class FindingKind(StrEnum):
    RECORD_MISSING = "record_missing"  # archived, but no record (deleted, or never recorded)
    NOT_OUR_MESSAGE = "not_our_message"  # archived, but its eventId is not its data's id
    BODY_ALTERED = "body_altered"  # the record's body is not the archived data
    FIELDS_ALTERED = "fields_altered"  # the record no longer agrees with its own body
    NOT_ARCHIVED = "not_archived"  # published, but no archived message


_EXPLANATIONS = {
    FindingKind.RECORD_MISSING: "an archived message has no audit record (deleted, or published "
    "without being recorded)",
    FindingKind.NOT_OUR_MESSAGE: "an archived message's eventId is not the id of its data: the "
    "receiver did not publish it",
    FindingKind.BODY_ALTERED: "the record's body differs from the message archived for it",
    FindingKind.FIELDS_ALTERED: "the record no longer agrees with its own body",
    FindingKind.NOT_ARCHIVED: "a published record has no archived message",
}


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    event_id: str
    detail: str
    message_id: str | None = None
    source: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "eventId": self.event_id,
            "messageId": self.message_id,
            "object": self.source,
            "detail": self.detail,
        }


def explain(kind: FindingKind) -> str:
    return _EXPLANATIONS[kind]


def _data_event_id(data: bytes) -> str | None:
    try:
        return event_id_for(json.loads(data))
    except (ValueError, SchemaViolationError):
        return None


def message_event_id(message: ArchivedMessage) -> str | None:
    """The eventId attribute the receiver puts on every message it publishes."""
    return message.attributes.get(EVENT_ID_ATTRIBUTE) or None


def check_message(message: ArchivedMessage, record: AuditRecord | None) -> list[Finding]:
    """What one archived message and the record stored under its eventId prove."""
    claimed = message_event_id(message)
    event_id = claimed or "(none)"

    def finding(kind: FindingKind, detail: str) -> Finding:
        return Finding(kind, event_id, detail, message.message_id, message.source)

    if claimed is None or _data_event_id(message.data) != claimed:
        return [finding(FindingKind.NOT_OUR_MESSAGE, explain(FindingKind.NOT_OUR_MESSAGE))]
    if record is None:
        return [finding(FindingKind.RECORD_MISSING, explain(FindingKind.RECORD_MISSING))]
    findings: list[Finding] = []
    # Whatever the document now holds: an edited record need not match its declared type.
    body: object = record.get(RecordField.BODY)
    if not isinstance(body, bytes) or body != message.data:
        findings.append(
            finding(
                FindingKind.BODY_ALTERED,
                "the record's body is not the archived data (sha256 "
                f"{hashlib.sha256(message.data).hexdigest()} archived)",
            )
        )
    report = check_integrity(record)
    if not report.ok:
        findings.append(finding(FindingKind.FIELDS_ALTERED, "; ".join(report.problems)))
    return findings


def check_published_record(
    record: AuditRecord, archived: Collection[str], *, expected_before: datetime
) -> Finding | None:
    """A ``published`` record whose publish the archive should hold by now, and does not."""
    if record.get(RecordField.PUBLISH_STATUS) != str(PublishStatus.PUBLISHED):
        return None
    published_at = record.get(RecordField.PUBLISHED_AT)
    if not isinstance(published_at, datetime) or published_at >= expected_before:
        # Published after the window (a later redrive) or too recently for its object to exist.
        return None
    event_id = str(record.get(RecordField.EVENT_ID))
    if event_id in archived:
        return None
    return Finding(
        FindingKind.NOT_ARCHIVED,
        event_id,
        f"{explain(FindingKind.NOT_ARCHIVED)} (published {rfc3339(published_at)})",
    )


@dataclass
class VerifyReport:
    """Counts and findings of one verify run."""

    since: datetime | None
    until: datetime
    expected_before: datetime
    messages: int = 0
    events: int = 0
    replays: int = 0
    published_records: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        by_kind = Counter(str(finding.kind) for finding in self.findings)
        return {
            "archivedMessages": self.messages,
            "archivedEvents": self.events,
            "replayMessages": self.replays,
            "publishedRecords": self.published_records,
            **{str(kind): by_kind.get(str(kind), 0) for kind in FindingKind},
        }


def verify_archive(
    archive: ArchiveReader,
    reader: AuditReader,
    location: ArchiveLocation,
    *,
    since: datetime | None,
    until: datetime,
    now: datetime,
    lag: timedelta = DEFAULT_LAG,
    on_message: Callable[[ArchivedMessage], None] | None = None,
) -> VerifyReport:
    """Every archived message of the window against its record, then every published record
    of the window against the archive.

    A record is read once per distinct (event id, data) pair: replays and redrives repeat a
    message byte for byte. Memory grows with the number of distinct events in the window
    (an id and a digest each), never with the size of the archive's objects.
    """
    expected_before = min(until, now - lag)
    report = VerifyReport(since, until, expected_before)
    seen: dict[str, bytes] = {}
    for message in archive.messages(location, since=since, until=until):
        if on_message is not None:
            on_message(message)
        report.messages += 1
        if message.attributes.get("replay") == "true":
            report.replays += 1
        event_id = message_event_id(message)
        digest = hashlib.sha256(message.data).digest()
        if event_id is not None and seen.get(event_id) == digest:
            continue
        # Only an id the data itself yields is looked up: the attribute is whatever the
        # publisher typed, and is never used as a document path.
        ours = event_id is not None and _data_event_id(message.data) == event_id
        record = reader.get(event_id) if ours and event_id is not None else None
        findings = check_message(message, record)
        report.findings.extend(findings)
        if event_id is not None and all(
            f.kind is not FindingKind.NOT_OUR_MESSAGE for f in findings
        ):
            if event_id not in seen:
                report.events += 1
            seen[event_id] = digest
    wanted = RecordFilter(
        equals={RecordField.PUBLISH_STATUS: str(PublishStatus.PUBLISHED)},
        since=since,
        until=until,
    )
    for record in query_records(reader, wanted, fields=PUBLISHED_FIELDS):
        report.published_records += 1
        missing = check_published_record(record, seen.keys(), expected_before=expected_before)
        if missing is not None:
            report.findings.append(missing)
    return report
