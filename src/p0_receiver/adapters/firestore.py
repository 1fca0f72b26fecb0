"""Firestore adapters: the audit log, the replay ledger and the quarantine.

Google client types and exceptions stay in this module; any failure leaves it as a
``DownstreamUnavailableError`` with a stable reason code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.api_core.retry import Retry
from google.cloud import firestore

from p0_receiver.errors import DownstreamUnavailableError, UnstorableRecordError
from p0_receiver.ports import TokenHistory
from p0_receiver.quarantine import (
    QuarantineField,
    QuarantineReceipt,
    QuarantineStatus,
    RefusedBody,
    quarantine_entry,
)
from p0_receiver.queries import TOKEN_LEDGER_TTL_FIELD
from p0_receiver.record import PublishStatus, RecordField

# The ledger entry's fields: the first event the token carried, and the reuses accepted since.
_LEDGER_EVENT_ID = "eventId"
_LEDGER_REUSED_BY = "reusedBy"
# Concurrent refusals under one token contend for the same entries; Firestore aborts the loser,
# and the client retries it in place (it keeps its spot in line) up to this many times.
_QUARANTINE_ATTEMPTS = 10

# Failures that mean "the service did not do it (or we cannot know)": retry later.
_UNAVAILABLE = (google_exceptions.GoogleAPIError, TimeoutError)


def firestore_client(project: str, database: str) -> firestore.Client:
    """A client for the project and database (the emulator when FIRESTORE_EMULATOR_HOST is set)."""
    return firestore.Client(project=project, database=database)


def bounded_retry(timeout_seconds: float) -> Retry:
    """Retry transient errors, but never past the request's budget."""
    return Retry(initial=0.05, maximum=1.0, multiplier=2.0, timeout=timeout_seconds)


@contextmanager
def _translated(reason: str) -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE as exc:
        raise DownstreamUnavailableError(reason, detail=type(exc).__name__) from exc


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
        with _translated("ledger_unavailable"):
            try:
                document.create(
                    {
                        _LEDGER_EVENT_ID: event_id,
                        "firstSeenAt": now,
                        TOKEN_LEDGER_TTL_FIELD: expires_at,
                    },
                    retry=self._retry,
                    timeout=self._timeout,
                )
            except google_exceptions.AlreadyExists:
                stored = document.get(retry=self._retry, timeout=self._timeout).to_dict()
            else:
                return TokenHistory(event_id, frozenset({event_id}))
        return _history(stored)

    def accept_reuse(self, fingerprint: str, event_id: str, *, now: datetime) -> None:
        with _translated("ledger_unavailable"):
            self._collection.document(fingerprint).update(
                {_LEDGER_REUSED_BY: firestore.ArrayUnion([event_id]), "lastReusedAt": now},
                retry=self._retry,
                timeout=self._timeout,
            )


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
        self._collection = client.collection(collection)
        self._timeout = timeout_seconds
        self._retry = bounded_retry(timeout_seconds)

    def _call(self) -> dict[str, Any]:
        return {"retry": self._retry, "timeout": self._timeout}

    def create(self, record: Mapping[str, Any]) -> bool:
        document = self._collection.document(record[RecordField.EVENT_ID])
        with _translated("audit_unavailable"):
            try:
                document.create(dict(record), **self._call())
            except google_exceptions.AlreadyExists:
                return False
            except google_exceptions.InvalidArgument as exc:
                # Not transient: the same record would be refused forever; a 503 would loop.
                raise UnstorableRecordError(type(exc).__name__) from exc
        return True

    def note_redelivery(self, event_id: str, *, now: datetime) -> Mapping[str, Any]:
        document = self._collection.document(event_id)
        with _translated("audit_unavailable"):
            document.update(
                {
                    RecordField.DELIVERY_COUNT: firestore.Increment(1),
                    RecordField.LAST_RECEIVED_AT: now,
                },
                **self._call(),
            )
            snapshot = document.get(**self._call())
        stored = snapshot.to_dict()
        if stored is None:  # deleted between the two calls (TTL or an operator): retry later
            raise DownstreamUnavailableError("audit_unavailable")
        return stored

    def mark_published(self, event_id: str, *, message_id: str, now: datetime) -> None:
        with _translated("audit_unavailable"):
            self._collection.document(event_id).update(
                {
                    RecordField.PUBLISH_STATUS: str(PublishStatus.PUBLISHED),
                    RecordField.MESSAGE_ID: message_id,
                    RecordField.PUBLISHED_AT: now,
                    RecordField.PUBLISH_ATTEMPTS: firestore.Increment(1),
                    RecordField.LAST_PUBLISH_ATTEMPT_AT: now,
                },
                **self._call(),
            )

    def note_publish_failure(self, event_id: str, *, error: str, now: datetime) -> None:
        with _translated("audit_unavailable"):
            self._collection.document(event_id).update(
                {
                    RecordField.PUBLISH_ATTEMPTS: firestore.Increment(1),
                    RecordField.LAST_PUBLISH_ERROR: error,
                    RecordField.LAST_PUBLISH_ATTEMPT_AT: now,
                },
                **self._call(),
            )


class FirestoreQuarantine:
    """Quarantine entries keyed by body SHA-256; the per-token bound is kept in a transaction."""

    def __init__(self, client: firestore.Client, collection: str, timeout_seconds: float) -> None:
        self._client = client
        self._collection = client.collection(collection)
        self._timeout = timeout_seconds

    def keep(
        self, refused: RefusedBody, *, now: datetime, retention_days: int, max_per_token: int
    ) -> QuarantineReceipt:
        entry_ref = self._collection.document(refused.quarantine_id)
        # Ids only: the bound counts entries without reading their bodies.
        same_token = (
            self._collection.where(
                filter=firestore.FieldFilter(
                    QuarantineField.TOKEN_FINGERPRINT, "==", refused.token.fingerprint
                )
            )
            .select([])
            .limit(max_per_token)
        )

        @firestore.transactional
        def keep_once(transaction: firestore.Transaction) -> QuarantineStatus:
            if entry_ref.get(transaction=transaction, timeout=self._timeout).exists:
                transaction.update(
                    entry_ref,
                    {
                        QuarantineField.COUNT: firestore.Increment(1),
                        QuarantineField.LAST_RECEIVED_AT: now,
                    },
                )
                return QuarantineStatus.REPEATED
            held = list(transaction.get(same_token, timeout=self._timeout))
            if len(held) >= max_per_token:
                return QuarantineStatus.TOKEN_LIMIT
            transaction.create(
                entry_ref, quarantine_entry(refused, now=now, retention_days=retention_days)
            )
            return QuarantineStatus.STORED

        with _translated("quarantine_unavailable"):
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
