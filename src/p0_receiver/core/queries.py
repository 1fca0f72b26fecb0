"""The catalogue of audit-log queries the product issues, and the composite indexes they need.

The Firestore emulator never demands indexes, so production is the first place a missing one
would show. Every query the code builds must come from a shape here; a test proves that
Terraform declares exactly ``required_indexes()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from p0_receiver.core.record import RecordField


class Direction(StrEnum):
    ASCENDING = "ASCENDING"
    DESCENDING = "DESCENDING"


@dataclass(frozen=True, order=True)
class IndexSpec:
    """A composite index on the audit collection: ordered (field, direction) pairs."""

    fields: tuple[tuple[str, Direction], ...]


@dataclass(frozen=True)
class QueryShape:
    """Equality filters (any subset may be used at once), then a range and order on one field.

    Firestore serves several equality filters plus an order by merging one
    (equality field, order field) index per filter, so one index per filter suffices.
    """

    name: str
    equality_fields: tuple[str, ...]
    order_field: str
    direction: Direction

    def check(self, equality_fields: Iterable[str]) -> None:
        """Refuse a query the catalogue, this shape (and so Terraform's indexes) does not cover."""
        if self not in QUERY_SHAPES:
            raise ValueError(f"query shape {self.name!r} is not in the catalogue")
        unknown = set(equality_fields) - set(self.equality_fields)
        if unknown:
            raise ValueError(f"query shape {self.name!r} has no filter on {sorted(unknown)}")

    def indexes(self) -> frozenset[IndexSpec]:
        return frozenset(
            IndexSpec(((name, Direction.ASCENDING), (self.order_field, self.direction)))
            for name in self.equality_fields
        )


# Filters an operator can combine when listing the audit log (newest first).
LIST_FILTER_FIELDS = (
    RecordField.EVENT_TYPE,
    RecordField.PRINCIPAL,
    RecordField.APPROVER,
    RecordField.NOTIFIER_ID,
    RecordField.OBJECT_ID,
    RecordField.PUBLISH_STATUS,
)

# audit query/list, export and replay: any subset of the filters, newest first.
AUDIT_LIST = QueryShape(
    "audit-list", LIST_FILTER_FIELDS, RecordField.RECEIVED_AT, Direction.DESCENDING
)
# audit timeline: one P0 request or pre-approval in P0's own time order.
AUDIT_TIMELINE = QueryShape(
    "audit-timeline", (RecordField.OBJECT_ID,), RecordField.OCCURRED_AT, Direction.ASCENDING
)
# report access-review: a period in P0's time order, optionally one notifier's.
REVIEW_PERIOD = QueryShape(
    "review-period", (RecordField.NOTIFIER_ID,), RecordField.OCCURRED_AT, Direction.ASCENDING
)
# redrive: records still "received", older than a cut-off.
REDRIVE_PENDING = QueryShape(
    "redrive-pending", (RecordField.PUBLISH_STATUS,), RecordField.RECEIVED_AT, Direction.DESCENDING
)
# Window scans (stats) filter and order on receivedAt alone: single-field index.
AUDIT_WINDOW = QueryShape("audit-window", (), RecordField.RECEIVED_AT, Direction.DESCENDING)
# audit show by the start of an event id: a range on the eventId field alone. With no equality
# filter, Firestore's automatic single-field index on eventId serves the range and its order,
# so the shape needs no composite index (tests/infra proves eventId keeps that index). The
# field rather than the document id (the same text): a ``__name__`` filter takes document
# references, while the reader's range filters pass plain values.
AUDIT_EVENT_ID_PREFIX = QueryShape(
    "audit-event-id-prefix", (), RecordField.EVENT_ID, Direction.ASCENDING
)

# Every query the product issues is built from one of these (the AuditReader port accepts
# nothing else: see p0_receiver.adapters.firestore); tests/infra proves Terraform declares
# their indexes.
QUERY_SHAPES: tuple[QueryShape, ...] = (
    AUDIT_LIST,
    AUDIT_TIMELINE,
    REDRIVE_PENDING,
    AUDIT_WINDOW,
    AUDIT_EVENT_ID_PREFIX,
    REVIEW_PERIOD,
)


def required_indexes() -> frozenset[IndexSpec]:
    """Every composite index the catalogue needs (what Terraform must declare, no more)."""
    return frozenset().union(*(shape.indexes() for shape in QUERY_SHAPES))


# Fields that are never filtered on and would only cost index writes (the body is up to
# 256 KiB of bytes): Terraform exempts them from single-field indexing.
UNINDEXED_FIELDS = (
    RecordField.BODY,
    RecordField.TOKEN,
    RecordField.REASON,
    RecordField.PERMISSION_DESCRIPTION,
    RecordField.P0_TIMES,
)
# TTL fields: the audit record's retention and the replay ledger's token expiry.
AUDIT_TTL_FIELD = RecordField.EXPIRE_AT
TOKEN_LEDGER_TTL_FIELD = "expiresAt"
