"""In-memory implementations of the ports, with switchable failures, for unit tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from p0_receiver.core.errors import DownstreamUnavailableError, UnstorableRecordError
from p0_receiver.core.quarantine import (
    QuarantineField,
    QuarantineReceipt,
    QuarantineStatus,
    RefusedBody,
    quarantine_entry,
)
from p0_receiver.core.queries import Direction, QueryShape
from p0_receiver.core.record import AuditRecord, PublishStatus, RecordField
from p0_receiver.ports import RangeBound, TokenHistory


class InMemoryTokenLedger:
    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self.unavailable = False

    def remember(
        self, fingerprint: str, event_id: str, *, expires_at: datetime, now: datetime
    ) -> TokenHistory:
        if self.unavailable:
            raise DownstreamUnavailableError("ledger_unavailable", detail="Injected")
        entry = self.entries.setdefault(
            fingerprint,
            {"eventId": event_id, "expiresAt": expires_at, "firstSeenAt": now, "reusedBy": []},
        )
        first = str(entry["eventId"])
        return TokenHistory(first, frozenset({first, *entry["reusedBy"]}))

    def accept_reuse(self, fingerprint: str, event_id: str, *, now: datetime) -> bool:
        if self.unavailable:
            raise DownstreamUnavailableError("ledger_unavailable", detail="Injected")
        if fingerprint not in self.entries:
            return False
        if event_id not in self.entries[fingerprint]["reusedBy"]:  # an array union
            self.entries[fingerprint]["reusedBy"].append(event_id)
        self.entries[fingerprint]["lastReusedAt"] = now
        return True


class InMemoryFirstDelivery:
    """Both first writes at once, over the in-memory ledger and audit log (all or nothing)."""

    def __init__(self, ledger: InMemoryTokenLedger, audit: InMemoryAuditLog) -> None:
        self.ledger = ledger
        self.audit = audit
        self.commits = 0

    def create_first(
        self, record: AuditRecord, *, fingerprint: str, expires_at: datetime, now: datetime
    ) -> bool:
        if self.ledger.unavailable:
            raise DownstreamUnavailableError("ledger_unavailable", detail="Injected")
        self.audit._check()  # the same switchable failures as the audit log
        if self.audit.refuse_as_invalid:
            raise UnstorableRecordError("InvalidArgument")
        self.commits += 1
        event_id = record[RecordField.EVENT_ID]
        if fingerprint in self.ledger.entries or event_id in self.audit.records:
            return False
        self.ledger.remember(fingerprint, event_id, expires_at=expires_at, now=now)
        self.audit.create(record)
        return True


class InMemoryQuarantine:
    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self.unavailable = False

    def keep(
        self, refused: RefusedBody, *, now: datetime, retention_days: int, max_per_token: int
    ) -> QuarantineReceipt:
        if self.unavailable:
            raise DownstreamUnavailableError("quarantine_unavailable", detail="Injected")
        entry = self.entries.get(refused.quarantine_id)
        if entry is not None:
            entry[QuarantineField.COUNT] += 1
            entry[QuarantineField.LAST_RECEIVED_AT] = now
            status = QuarantineStatus.REPEATED
        elif (
            sum(
                held[QuarantineField.TOKEN_FINGERPRINT] == refused.token.fingerprint
                for held in self.entries.values()
            )
            >= max_per_token
        ):
            status = QuarantineStatus.TOKEN_LIMIT
        else:
            self.entries[refused.quarantine_id] = quarantine_entry(
                refused, now=now, retention_days=retention_days
            )
            status = QuarantineStatus.STORED
        return QuarantineReceipt(refused.quarantine_id, refused.reason, status)

    def list_entries(
        self, *, limit: int | None = None, reason: str | None = None
    ) -> Iterator[dict[str, Any]]:
        if self.unavailable:
            raise DownstreamUnavailableError("quarantine_unavailable", detail="Injected")
        ordered = sorted(
            (
                entry
                for entry in self.entries.values()
                if reason is None or entry[QuarantineField.REASON] == reason
            ),
            key=lambda entry: entry[QuarantineField.LAST_RECEIVED_AT],
            reverse=True,
        )
        listed = ordered if limit is None else ordered[:limit]
        return iter(
            [{k: v for k, v in entry.items() if k != QuarantineField.BODY} for entry in listed]
        )

    def get(self, quarantine_id: str) -> dict[str, Any] | None:
        if self.unavailable:
            raise DownstreamUnavailableError("quarantine_unavailable", detail="Injected")
        entry = self.entries.get(quarantine_id)
        return None if entry is None else dict(entry)

    def mark_released(self, quarantine_id: str, *, event_id: str, now: datetime) -> bool:
        if self.unavailable:
            raise DownstreamUnavailableError("quarantine_unavailable", detail="Injected")
        if quarantine_id not in self.entries:
            return False
        self.entries[quarantine_id].update(
            {QuarantineField.RELEASED_AT: now, QuarantineField.RELEASED_EVENT_ID: event_id}
        )
        return True

    def discard(self, quarantine_id: str) -> bool:
        if self.unavailable:
            raise DownstreamUnavailableError("quarantine_unavailable", detail="Injected")
        return self.entries.pop(quarantine_id, None) is not None


class InMemoryAuditLog:
    def __init__(self) -> None:
        self.records: dict[str, AuditRecord] = {}
        self.unavailable = False
        self.fail_marking = False
        self.refuse_as_invalid = False

    def _check(self) -> None:
        if self.unavailable:
            raise DownstreamUnavailableError("audit_unavailable", detail="Injected")

    def create(self, record: AuditRecord) -> bool:
        self._check()
        if self.refuse_as_invalid:
            raise UnstorableRecordError("InvalidArgument")
        event_id = record[RecordField.EVENT_ID]
        if event_id in self.records:
            return False
        self.records[event_id] = record.copy()
        return True

    def note_redelivery(self, event_id: str, *, now: datetime) -> AuditRecord:
        self._check()
        record = self.records[event_id]
        record[RecordField.DELIVERY_COUNT] += 1
        record[RecordField.LAST_RECEIVED_AT] = now
        return record.copy()

    def mark_published(self, event_id: str, *, message_id: str, now: datetime) -> None:
        self._check()
        if self.fail_marking:
            raise DownstreamUnavailableError("audit_unavailable", detail="Injected")
        record = self.records[event_id]
        record.update(
            {
                RecordField.PUBLISH_STATUS: str(PublishStatus.PUBLISHED),
                RecordField.MESSAGE_ID: message_id,
                RecordField.PUBLISHED_AT: now,
                RecordField.PUBLISH_ATTEMPTS: record[RecordField.PUBLISH_ATTEMPTS] + 1,
            }
        )

    def note_publish_failure(self, event_id: str, *, error: str, now: datetime) -> None:
        self._check()
        record = self.records[event_id]
        record[RecordField.PUBLISH_ATTEMPTS] += 1
        record[RecordField.LAST_PUBLISH_ERROR] = error
        record[RecordField.LAST_PUBLISH_ATTEMPT_AT] = now


class InMemoryPublisher:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, dict[str, str]]] = []
        self.unavailable = False
        self._ids = itertools.count(1)

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        if self.unavailable:
            raise DownstreamUnavailableError("publish_failed", detail="Injected")
        message_id = str(next(self._ids))
        self.messages.append((message_id, data, dict(attributes)))
        return message_id


class InMemoryAuditReader:
    """Reads an ``InMemoryAuditLog`` the way Firestore answers the catalogued queries.

    Only catalogued shapes and their equality fields; documents without the order field are
    left out (Firestore cannot order them); ties are broken by document id in the shape's
    direction; the window is ``lower <= order field < upper``. Each scan takes its snapshot
    when called (like a fetched page): later writes are seen by ``get`` only.
    """

    def __init__(self, audit_log: InMemoryAuditLog) -> None:
        self._audit_log = audit_log
        self.unavailable = False

    def get(self, event_id: str) -> AuditRecord | None:
        if self.unavailable:
            raise DownstreamUnavailableError("audit_unavailable", detail="Injected")
        record = self._audit_log.records.get(event_id)
        return None if record is None else record.copy()

    def scan(
        self,
        shape: QueryShape,
        *,
        equals: Mapping[str, str],
        lower: RangeBound | None = None,
        upper: RangeBound | None = None,
        limit: int | None = None,
        fields: Sequence[str] | None = None,
    ) -> Iterator[AuditRecord]:
        shape.check(equals)
        if self.unavailable:
            raise DownstreamUnavailableError("audit_unavailable", detail="Injected")
        order = shape.order_field
        stored: list[Mapping[str, Any]] = list(self._audit_log.records.values())
        matching = [
            record
            for record in stored
            if order in record
            and all(record.get(name) == value for name, value in equals.items())
            and (lower is None or record[order] >= lower)
            and (upper is None or record[order] < upper)
        ]
        matching.sort(
            key=lambda record: (record[order], record[RecordField.EVENT_ID]),
            reverse=shape.direction is Direction.DESCENDING,
        )
        kept = matching if limit is None else matching[:limit]
        if fields is not None:
            wanted = {*fields, order}
            kept = [{k: v for k, v in record.items() if k in wanted} for record in kept]
        return iter([cast("AuditRecord", dict(record)) for record in kept])
