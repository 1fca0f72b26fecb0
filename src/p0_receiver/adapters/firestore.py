"""Firestore adapters: the audit log and the replay ledger.

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

from p0_receiver.errors import DownstreamUnavailableError
from p0_receiver.queries import TOKEN_LEDGER_TTL_FIELD
from p0_receiver.record import PublishStatus, RecordField

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
    ) -> str:
        document = self._collection.document(fingerprint)
        with _translated("ledger_unavailable"):
            try:
                document.create(
                    {"eventId": event_id, "firstSeenAt": now, TOKEN_LEDGER_TTL_FIELD: expires_at},
                    retry=self._retry,
                    timeout=self._timeout,
                )
            except google_exceptions.AlreadyExists:
                stored = document.get(retry=self._retry, timeout=self._timeout).to_dict() or {}
            else:
                return event_id
        first = stored.get("eventId")
        return first if isinstance(first, str) else event_id


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
