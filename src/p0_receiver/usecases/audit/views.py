"""The operator's questions as functions of the ``AuditReader`` port (query, timeline, pending,
window, event-id prefix).

Every question is answered by a shape from ``p0_receiver.core.queries``; the reader refuses any
other query, so Terraform's indexes cover everything the CLI can ask.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime

from p0_receiver.core.filters import RecordFilter
from p0_receiver.core.queries import (
    AUDIT_EVENT_ID_PREFIX,
    AUDIT_LIST,
    AUDIT_TIMELINE,
    AUDIT_WINDOW,
    REDRIVE_PENDING,
)
from p0_receiver.core.record import AuditRecord, PublishStatus, RecordField
from p0_receiver.ports import AuditReader


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


# An event id is SHA-256 in lowercase hex. Eight characters (32 bits) are short enough to type
# and rarely shared; when two records do share them, the operator is asked for more.
MIN_EVENT_ID_PREFIX = 8
EVENT_ID_LENGTH = 64
_EVENT_ID_PREFIX = re.compile(rf"[0-9a-f]{{{MIN_EVENT_ID_PREFIX},{EVENT_ID_LENGTH}}}")


def is_event_id_prefix(text: str) -> bool:
    """Whether ``text`` is a whole event id or its first eight or more characters."""
    return _EVENT_ID_PREFIX.fullmatch(text) is not None


def records_with_id_prefix(reader: AuditReader, prefix: str, *, limit: int) -> list[AuditRecord]:
    """Up to ``limit`` records whose event id starts with ``prefix``, in event-id order.

    "g" sorts after every hex digit, so ``[prefix, prefix + "g")`` holds exactly the event ids
    that start with ``prefix``.
    """
    if not is_event_id_prefix(prefix):
        raise ValueError("an event id prefix is 8 to 64 lowercase hex characters")
    return list(
        reader.scan(AUDIT_EVENT_ID_PREFIX, equals={}, lower=prefix, upper=prefix + "g", limit=limit)
    )
