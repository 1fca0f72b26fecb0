"""Firestore adapters: the audit log (written and read), the replay ledger and the quarantine.

Google client types stay in this module; any failure leaves it as a
``DownstreamUnavailableError`` (``adapters.google_errors``) with a stable reason code.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import grpc
from google.api_core import exceptions as google_exceptions
from google.api_core.retry import Retry
from google.cloud import firestore

from p0_receiver.adapters import firestore_writes
from p0_receiver.adapters.google_errors import translated
from p0_receiver.core.errors import DownstreamUnavailableError, UnstorableRecordError
from p0_receiver.core.quarantine import (
    TOKEN_BOUND_EXPIRE_AT,
    TOKEN_BOUND_HELD,
    QuarantineField,
    QuarantineReceipt,
    QuarantineStatus,
    RefusedBody,
    entries_held,
    quarantine_entry,
    token_bound_collection,
)
from p0_receiver.core.queries import TOKEN_LEDGER_TTL_FIELD, Direction, QueryShape
from p0_receiver.core.record import AuditRecord, PublishStatus, RecordField
from p0_receiver.ports import RangeBound, TokenHistory

# The ledger entry's fields: the first event the token carried, and the reuses accepted since.
_LEDGER_EVENT_ID = "eventId"
_LEDGER_REUSED_BY = "reusedBy"
# Concurrent refusals under one token contend for the same entries; Firestore aborts the loser,
# and the client retries it in place (it keeps its spot in line) up to this many times.
_QUARANTINE_ATTEMPTS = 10
# Records per page when reading the audit log: memory stays bounded by one page of bodies.
AUDIT_PAGE_SIZE = 300
_SERVICE = "Firestore"


def firestore_client(project: str, database: str) -> firestore.Client:
    """A client for the project and database (the emulator when FIRESTORE_EMULATOR_HOST is set)."""
    return firestore.Client(project=project, database=database)


def connect_channel(client: firestore.Client, timeout_seconds: float) -> bool:
    """Build the client's API stub and open its connection now; ``False`` if not in time.

    Both happen on the first call otherwise (measured on the emulator: most of a cold
    instance's first-delivery latency). Best effort: a delivery connects again if needed.
    """
    channel = client._firestore_api.transport.grpc_channel
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_seconds)
    except grpc.FutureTimeoutError:
        return False
    return True


def bounded_retry(timeout_seconds: float) -> Retry:
    """Retry transient errors, but never past the request's budget."""
    return Retry(initial=0.05, maximum=1.0, multiplier=2.0, timeout=timeout_seconds)


class FirestoreTokenLedger:
    """One document per token fingerprint; Firestore's TTL policy deletes it after expiry."""

    def __init__(self, client: firestore.Client, collection: str, timeout_seconds: float) -> None:
        self._collection = client.collection(collection)
        self._timeout = timeout_seconds
        self._retry = bounded_retry(timeout_seconds)

    def remember(
        self, fingerprint: str, event_id: str, *, expires_at: datetime, now: datetime
    ) -> TokenHistory:
        document = self._collection.document(fingerprint)
        with translated(_SERVICE, "ledger_unavailable"):
            try:
                document.create(
                    _ledger_entry(event_id, expires_at=expires_at, now=now),
                    retry=self._retry,
                    timeout=self._timeout,
                )
            except google_exceptions.AlreadyExists:
                stored = document.get(retry=self._retry, timeout=self._timeout).to_dict()
            else:
                return TokenHistory(event_id, frozenset({event_id}))
        return _history(stored)

    def accept_reuse(self, fingerprint: str, event_id: str, *, now: datetime) -> bool:
        with translated(_SERVICE, "ledger_unavailable"):
            try:
                self._collection.document(fingerprint).update(
                    {_LEDGER_REUSED_BY: firestore.ArrayUnion([event_id]), "lastReusedAt": now},
                    retry=self._retry,
                    timeout=self._timeout,
                )
            except google_exceptions.NotFound:  # expired (TTL): nothing left to accept under
                return False
        return True


def _ledger_entry(event_id: str, *, expires_at: datetime, now: datetime) -> dict[str, Any]:
    return {_LEDGER_EVENT_ID: event_id, "firstSeenAt": now, TOKEN_LEDGER_TTL_FIELD: expires_at}


def _history(stored: Mapping[str, Any] | None) -> TokenHistory:
    # Fail closed: an entry we cannot read (deleted by TTL between the two calls, or written
    # by something else) must not let a replay through. P0's retry will find a clean state.
    first = (stored or {}).get(_LEDGER_EVENT_ID)
    reused = (stored or {}).get(_LEDGER_REUSED_BY, [])
    if not isinstance(first, str) or not first or not isinstance(reused, list):
        raise DownstreamUnavailableError("ledger_unavailable", detail="UnreadableLedgerEntry")
    accepted = {first, *(item for item in reused if isinstance(item, str))}
    return TokenHistory(first, frozenset(accepted))


class FirestoreAuditLog:
    """The audit collection; document id = event id, so ``create()`` is the dedupe."""

    def __init__(self, client: firestore.Client, collection: str, timeout_seconds: float) -> None:
        self._client = client
        self._collection = client.collection(collection)
        self._timeout = timeout_seconds
        self._retry = bounded_retry(timeout_seconds)

    def _call(self) -> dict[str, Any]:
        return {"retry": self._retry, "timeout": self._timeout}

    def create(self, record: AuditRecord) -> bool:
        document = self._collection.document(record[RecordField.EVENT_ID])
        with translated(_SERVICE, "audit_unavailable"):
            try:
                document.create(dict(record), **self._call())
            except google_exceptions.AlreadyExists:
                return False
            except google_exceptions.InvalidArgument as exc:
                # Not transient: the same record would be refused forever; a 503 would loop.
                raise UnstorableRecordError(type(exc).__name__) from exc
        return True

    def note_redelivery(self, event_id: str, *, now: datetime) -> AuditRecord:
        document = self._collection.document(event_id)
        with translated(_SERVICE, "audit_unavailable"):
            document.update(
                {
                    RecordField.DELIVERY_COUNT: firestore.Increment(1),
                    RecordField.LAST_RECEIVED_AT: now,
                },
                **self._call(),
            )
            snapshot = document.get(**self._call())
        stored = cast("AuditRecord | None", snapshot.to_dict())
        if stored is None:  # deleted between the two calls (TTL or an operator): retry later
            raise DownstreamUnavailableError("audit_unavailable")
        return stored

    def mark_published(self, event_id: str, *, message_id: str, now: datetime) -> None:
        # On every accepted delivery's path: encoded directly (see firestore_writes).
        marked = firestore_writes.update_write(
            self._client,
            f"{self._collection.id}/{event_id}",
            {
                RecordField.PUBLISH_STATUS: str(PublishStatus.PUBLISHED),
                RecordField.MESSAGE_ID: message_id,
                RecordField.PUBLISHED_AT: now,
                RecordField.LAST_PUBLISH_ATTEMPT_AT: now,
            },
            increments={RecordField.PUBLISH_ATTEMPTS: 1},
        )
        with translated(_SERVICE, "audit_unavailable"):
            firestore_writes.commit(
                self._client, [marked], retry=self._retry, timeout=self._timeout
            )

    def note_publish_failure(self, event_id: str, *, error: str, now: datetime) -> None:
        with translated(_SERVICE, "audit_unavailable"):
            self._collection.document(event_id).update(
                {
                    RecordField.PUBLISH_ATTEMPTS: firestore.Increment(1),
                    RecordField.LAST_PUBLISH_ERROR: error,
                    RecordField.LAST_PUBLISH_ATTEMPT_AT: now,
                },
                **self._call(),
            )


class FirestoreFirstDelivery:
    """The ledger entry and the audit record of a first delivery in one batched commit.

    A batch of ``create`` writes is atomic: if either document exists the commit fails with
    ``AlreadyExists`` and neither is written.
    """

    def __init__(
        self,
        client: firestore.Client,
        *,
        ledger_collection: str,
        audit_collection: str,
        timeout_seconds: float,
    ) -> None:
        self._client = client
        self._ledger = client.collection(ledger_collection)
        self._audit = client.collection(audit_collection)
        self._timeout = timeout_seconds
        self._retry = bounded_retry(timeout_seconds)

    def create_first(
        self, record: AuditRecord, *, fingerprint: str, expires_at: datetime, now: datetime
    ) -> bool:
        event_id = record[RecordField.EVENT_ID]
        # Every accepted delivery's path: encoded directly (see firestore_writes).
        writes = (
            firestore_writes.create_write(
                self._client,
                f"{self._ledger.id}/{fingerprint}",
                _ledger_entry(event_id, expires_at=expires_at, now=now),
            ),
            firestore_writes.create_write(self._client, f"{self._audit.id}/{event_id}", record),
        )
        with translated(_SERVICE, "audit_unavailable"):
            try:
                firestore_writes.commit(
                    self._client, writes, retry=self._retry, timeout=self._timeout
                )
            except google_exceptions.AlreadyExists:
                return False
            except google_exceptions.InvalidArgument as exc:
                raise UnstorableRecordError(type(exc).__name__) from exc
        return True


class FirestoreQuarantine:
    """Quarantine entries keyed by body SHA-256; the per-token bound is kept in a transaction.

    Both ports: ``Quarantine`` (the receiver keeps bodies) and ``QuarantineDesk`` (an operator
    lists, reads, releases and discards them).
    """

    def __init__(self, client: firestore.Client, collection: str, timeout_seconds: float) -> None:
        self._client = client
        self._collection = client.collection(collection)
        self._bounds = client.collection(token_bound_collection(collection))
        self._timeout = timeout_seconds
        self._retry = bounded_retry(timeout_seconds)

    def keep(
        self, refused: RefusedBody, *, now: datetime, retention_days: int, max_per_token: int
    ) -> QuarantineReceipt:
        entry_ref = self._collection.document(refused.quarantine_id)
        bound_ref = self._bounds.document(refused.token.fingerprint)
        # The whole step, every attempt included, within one Firestore budget: a refused body
        # is answered at once whether or not it could be kept.
        deadline = time.monotonic() + self._timeout

        @firestore.transactional
        def keep_once(transaction: firestore.Transaction) -> QuarantineStatus:
            if time.monotonic() > deadline:
                raise DownstreamUnavailableError("quarantine_unavailable", "DeadlineExceeded")
            # Two point reads, no query: only this body's entry and this token's bound.
            if entry_ref.get(transaction=transaction, timeout=self._timeout).exists:
                transaction.update(
                    entry_ref,
                    {
                        QuarantineField.COUNT: firestore.Increment(1),
                        QuarantineField.LAST_RECEIVED_AT: now,
                    },
                )
                return QuarantineStatus.REPEATED
            bound = bound_ref.get(transaction=transaction, timeout=self._timeout).to_dict()
            held = entries_held(bound, now=now)
            if len(held) >= max_per_token:
                return QuarantineStatus.TOKEN_LIMIT
            entry = quarantine_entry(refused, now=now, retention_days=retention_days)
            held[refused.quarantine_id] = entry[QuarantineField.EXPIRE_AT]
            transaction.set(
                bound_ref, {TOKEN_BOUND_HELD: held, TOKEN_BOUND_EXPIRE_AT: max(held.values())}
            )
            transaction.create(entry_ref, entry)
            return QuarantineStatus.STORED

        with translated(_SERVICE, "quarantine_unavailable"):
            try:
                status: QuarantineStatus = keep_once(
                    self._client.transaction(max_attempts=_QUARANTINE_ATTEMPTS)
                )
            except ValueError as exc:
                # The client's way of saying "still aborted after max_attempts" (contention
                # between refusals under one token): unavailable, like any other outage.
                if not isinstance(exc.__cause__, google_exceptions.Aborted):
                    raise
                raise DownstreamUnavailableError("quarantine_unavailable", "Aborted") from exc
        return QuarantineReceipt(refused.quarantine_id, refused.reason, status)

    # The operator's side (QuarantineDesk).

    def list_entries(
        self, *, limit: int | None = None, reason: str | None = None
    ) -> Iterator[dict[str, Any]]:
        # Ordered on one field: Firestore's automatic single-field index serves it. The reason
        # is filtered here rather than in the query (which would need a composite index): the
        # quarantine is small by construction (bounded per token, a retention of days).
        query = self._collection.order_by(
            QuarantineField.LAST_RECEIVED_AT, direction=firestore.Query.DESCENDING
        ).select(_LISTED_QUARANTINE_FIELDS)
        if limit is not None and reason is None:
            query = query.limit(limit)
        with translated(_SERVICE, "quarantine_unavailable"):
            snapshots = list(query.get(retry=self._retry, timeout=self._timeout))
        entries = (snapshot.to_dict() or {} for snapshot in snapshots)
        matching = (e for e in entries if reason is None or e.get(QuarantineField.REASON) == reason)
        yield from itertools.islice(matching, limit)

    def get(self, quarantine_id: str) -> dict[str, Any] | None:
        with translated(_SERVICE, "quarantine_unavailable"):
            snapshot = self._collection.document(quarantine_id).get(
                retry=self._retry, timeout=self._timeout
            )
        return snapshot.to_dict()

    def mark_released(self, quarantine_id: str, *, event_id: str, now: datetime) -> bool:
        with translated(_SERVICE, "quarantine_unavailable"):
            try:
                self._collection.document(quarantine_id).update(
                    {QuarantineField.RELEASED_AT: now, QuarantineField.RELEASED_EVENT_ID: event_id},
                    retry=self._retry,
                    timeout=self._timeout,
                )
            except google_exceptions.NotFound:  # discarded meanwhile, or past its retention
                return False
        return True

    def discard(self, quarantine_id: str) -> bool:
        document = self._collection.document(quarantine_id)
        with translated(_SERVICE, "quarantine_unavailable"):
            # delete() succeeds on a missing document: ask first, so the operator hears of a
            # mistyped id. (A race with the TTL only makes the answer stale, not wrong.)
            snapshot = document.get(retry=self._retry, timeout=self._timeout)
            if not snapshot.exists:
                return False
            batch = self._client.batch()
            batch.delete(document)
            fingerprint = (snapshot.to_dict() or {}).get(QuarantineField.TOKEN_FINGERPRINT)
            if isinstance(fingerprint, str) and fingerprint:
                # Its place under the token's bound is free again (merge: the bound document
                # of an entry kept before the bound had documents may not exist).
                batch.set(
                    self._bounds.document(fingerprint),
                    {TOKEN_BOUND_HELD: {quarantine_id: firestore.DELETE_FIELD}},
                    merge=True,
                )
            batch.commit(retry=self._retry, timeout=self._timeout)
        return True


# What a quarantine listing reads: everything but the body.
_LISTED_QUARANTINE_FIELDS = [
    value
    for name, value in vars(QuarantineField).items()
    if name.isupper() and value != QuarantineField.BODY
]


class FirestoreAuditReader:
    """Pages through the audit collection with ``start_after`` on the last document.

    Accepts only the catalogued query shapes (``p0_receiver.core.queries``), so every query it
    runs has its composite indexes declared in Terraform.
    """

    def __init__(
        self,
        client: firestore.Client,
        collection: str,
        timeout_seconds: float,
        *,
        page_size: int = AUDIT_PAGE_SIZE,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._collection = client.collection(collection)
        self._timeout = timeout_seconds
        self._retry = bounded_retry(timeout_seconds)
        self._page_size = page_size

    def get(self, event_id: str) -> AuditRecord | None:
        with translated(_SERVICE, "audit_unavailable"):
            snapshot = self._collection.document(event_id).get(
                retry=self._retry, timeout=self._timeout
            )
        return cast("AuditRecord | None", snapshot.to_dict())

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
        order = shape.order_field
        query: Any = self._collection
        for name in sorted(equals):
            query = query.where(filter=firestore.FieldFilter(name, "==", equals[name]))
        if lower is not None:
            query = query.where(filter=firestore.FieldFilter(order, ">=", lower))
        if upper is not None:
            query = query.where(filter=firestore.FieldFilter(order, "<", upper))
        direction = (
            firestore.Query.DESCENDING
            if shape.direction is Direction.DESCENDING
            else firestore.Query.ASCENDING
        )
        query = query.order_by(order, direction=direction)
        if fields is not None:
            # The cursor is built from the last document's order field: always fetch it.
            query = query.select(sorted({*fields, order}))
        return self._pages(query, shape, tuple(sorted(equals)), limit)

    def _pages(
        self, query: Any, shape: QueryShape, equals: tuple[str, ...], limit: int | None
    ) -> Iterator[AuditRecord]:
        remaining = limit
        last: Any = None
        while remaining is None or remaining > 0:
            size = self._page_size if remaining is None else min(self._page_size, remaining)
            page = query.limit(size)
            if last is not None:
                page = page.start_after(last)
            with translated(_SERVICE, "audit_unavailable", shape=shape, equals=equals):
                snapshots = list(page.stream(retry=self._retry, timeout=self._timeout))
            for snapshot in snapshots:
                yield cast("AuditRecord", snapshot.to_dict())  # a query's documents exist
            if len(snapshots) < size:
                return
            last = snapshots[-1]
            if remaining is not None:
                remaining -= len(snapshots)
