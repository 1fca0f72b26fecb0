"""Counting records by event type, day and publish status: a pure fold over a stream."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from p0_receiver.core.record import RecordField

# The only fields a stats scan reads (a projection: bodies never leave Firestore).
STATS_FIELDS = (RecordField.EVENT_TYPE, RecordField.RECEIVED_AT, RecordField.PUBLISH_STATUS)


@dataclass
class AuditStats:
    total: int = 0
    by_event_type: Counter[str] = field(default_factory=Counter)
    by_day: Counter[str] = field(default_factory=Counter)
    by_publish_status: Counter[str] = field(default_factory=Counter)

    def add(self, record: Mapping[str, Any]) -> None:
        self.total += 1
        self.by_event_type[str(record.get(RecordField.EVENT_TYPE) or "(none)")] += 1
        received = record.get(RecordField.RECEIVED_AT)
        day = received.date().isoformat() if isinstance(received, datetime) else "(unknown)"
        self.by_day[day] += 1
        self.by_publish_status[str(record.get(RecordField.PUBLISH_STATUS) or "(none)")] += 1

    def dimensions(self) -> dict[str, dict[str, int]]:
        """Each dimension's counts: event types and statuses by count, days in date order."""
        return {
            "eventType": dict(self.by_event_type.most_common()),
            "day": dict(sorted(self.by_day.items())),
            "publishStatus": dict(self.by_publish_status.most_common()),
        }


def count_records(records: Iterable[Mapping[str, Any]]) -> AuditStats:
    stats = AuditStats()
    for record in records:
        stats.add(record)
    return stats
