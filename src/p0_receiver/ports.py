"""The ports the delivery service needs: the replay ledger, the audit log and the publisher.

Adapters (``p0_receiver.adapters``) implement them for Firestore and Pub/Sub and raise
``DownstreamUnavailableError`` for any failure of the backing service; tests use in-memory
implementations of the same protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol


class TokenLedger(Protocol):
    """Remembers which event each accepted token carried, until the token expires."""

    def remember(
        self, fingerprint: str, event_id: str, *, expires_at: datetime, now: datetime
    ) -> str:
        """Record the pair atomically if new; return the event id first seen with the token."""


class AuditLog(Protocol):
    """The system of record: one document per event id."""

    def create(self, record: Mapping[str, Any]) -> bool:
        """Atomically create the record; ``False`` if one with its event id already exists."""

    def note_redelivery(self, event_id: str, *, now: datetime) -> Mapping[str, Any]:
        """Count one more delivery of an existing record and return the stored record."""

    def mark_published(self, event_id: str, *, message_id: str, now: datetime) -> None:
        """Record a successful publish (status ``published`` and the message id)."""

    def note_publish_failure(self, event_id: str, *, error: str, now: datetime) -> None:
        """Record a failed publish attempt; the status stays ``received``."""


class EventPublisher(Protocol):
    """Puts one message on the events topic and waits for the server's message id."""

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        """Publish and wait (bounded); return the message id or raise."""
