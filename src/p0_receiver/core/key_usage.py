"""Which key verified the records of a window: first and last use per key thumbprint, a pure
fold over a stream (``audit stats --by key``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from p0_receiver.core.record import RecordField

# Records written before the receiver recorded its key.
UNKNOWN_KEY = "(not recorded)"
# The only fields a key-usage scan reads (a projection: bodies never leave Firestore).
KEY_USAGE_FIELDS = (RecordField.KEY_THUMBPRINT, RecordField.KEY_ID, RecordField.RECEIVED_AT)


@dataclass
class KeyUse:
    thumbprint: str
    key_ids: set[str]
    count: int
    first: datetime | None
    last: datetime | None

    def as_row(self) -> dict[str, Any]:
        return {
            RecordField.KEY_THUMBPRINT: self.thumbprint,
            RecordField.KEY_ID: ", ".join(sorted(self.key_ids)) or None,
            "records": self.count,
            "firstUse": self.first,
            "lastUse": self.last,
        }


def key_usage(records: Iterable[Mapping[str, Any]]) -> list[KeyUse]:
    """Per key thumbprint: its kids, how many records, first and last receivedAt; the key in
    use most recently first."""
    uses: dict[str, KeyUse] = {}
    for record in records:
        thumbprint = record.get(RecordField.KEY_THUMBPRINT)
        name = thumbprint if isinstance(thumbprint, str) and thumbprint else UNKNOWN_KEY
        use = uses.setdefault(name, KeyUse(name, set(), 0, None, None))
        use.count += 1
        kid = record.get(RecordField.KEY_ID)
        if isinstance(kid, str) and kid:
            use.key_ids.add(kid)
        received = record.get(RecordField.RECEIVED_AT)
        if isinstance(received, datetime):
            use.first = received if use.first is None else min(use.first, received)
            use.last = received if use.last is None else max(use.last, received)
    return sorted(
        uses.values(),
        key=lambda use: (use.last is not None, use.last or datetime.min.replace(tzinfo=UTC)),
        reverse=True,
    )
