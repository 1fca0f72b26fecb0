"""The operator's questions as functions of the ``AuditReader`` port (query, timeline, pending).

Every question is answered by a shape from ``p0_receiver.queries``; the reader refuses any
other query, so Terraform's indexes cover everything the CLI can ask.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from p0_receiver.auditlog.filters import RecordFilter
from p0_receiver.ports import AuditReader
from p0_receiver.queries import (
    AUDIT_LIST,
    AUDIT_TIMELINE,
    AUDIT_WINDOW,
    REDRIVE_PENDING,
)
from p0_receiver.record import AuditRecord, PublishStatus, RecordField


def query_records(
    reader: AuditReader, wanted: RecordFilter, *, fields: Sequence[str] | None = None
) -> Iterator[AuditRecord]:
    """The audit log filtered, newest first."""
    return reader.scan(
        AUDIT_LIST,
        equals=wanted.equals,
        lower=wanted.since,
        upper=wanted.until,
        limit=wanted.limit,
        fields=fields,
    )


def timeline(reader: AuditReader, object_id: str) -> Iterator[AuditRecord]:
    """Every event about one P0 request or pre-approval, in P0's time order."""
    return reader.scan(AUDIT_TIMELINE, equals={RecordField.OBJECT_ID: object_id})


def pending_records(
    reader: AuditReader, *, received_before: datetime, limit: int | None = None
) -> Iterator[AuditRecord]:
    """Records still ``received`` (not known to be on the topic), newest first."""
    return reader.scan(
        REDRIVE_PENDING,
        equals={RecordField.PUBLISH_STATUS: str(PublishStatus.RECEIVED)},
        upper=received_before,
        limit=limit,
    )


def window(
    reader: AuditReader,
    *,
    since: datetime | None,
    until: datetime | None,
    fields: Sequence[str] | None = None,
) -> Iterator[AuditRecord]:
    """Everything received in a window (optionally only some fields), newest first."""
    return reader.scan(AUDIT_WINDOW, equals={}, lower=since, upper=until, fields=fields)
