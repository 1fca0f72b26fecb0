"""Every port of the use cases: replay ledger, audit log (written and read), quarantine,
publisher, the write-once archive of published messages, and what ``doctor`` reads (the
database, its admin API, the topic and its policy, the key's secret), read-only.

Adapters (``p0_receiver.adapters``) implement them for Firestore, Pub/Sub and Cloud Storage
and raise ``DownstreamUnavailableError`` for any failure of the backing service; tests use
in-memory implementations of the same protocols (``tests/fakes.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from p0_receiver.core.quarantine import QuarantineReceipt, RefusedBody
from p0_receiver.core.queries import IndexSpec, QueryShape
from p0_receiver.core.record import AuditRecord


@dataclass(frozen=True)
class TokenHistory:
    """What the ledger knows of one token: the first event it carried, and every one accepted."""

    first_event_id: str
    accepted_event_ids: frozenset[str]


class TokenLedger(Protocol):
    """Remembers which events each accepted token carried, until the token expires."""

    def remember(
        self, fingerprint: str, event_id: str, *, expires_at: datetime, now: datetime
    ) -> TokenHistory:
        """Record the pair atomically if the token is new; return the token's history.

        A stored entry that cannot be read as history raises ``DownstreamUnavailableError``
        (fail closed: an unreadable ledger must never let a replay through).
        """

    def accept_reuse(self, fingerprint: str, event_id: str, *, now: datetime) -> bool:
        """Add an event accepted under the reuse policy (or released by an operator) to the
        token's accepted events, so that P0 delivering it again under that token is a
        duplicate. ``False`` when the ledger no longer holds the token: it has expired, and a
        delivery under it is refused as expired anyway."""


class AuditLog(Protocol):
    """The system of record: one document per event id."""

    def create(self, record: AuditRecord) -> bool:
        """Atomically create the record; ``False`` if one with its event id already exists."""

    def note_redelivery(self, event_id: str, *, now: datetime) -> AuditRecord:
        """Count one more delivery of an existing record and return the stored record."""

    def mark_published(self, event_id: str, *, message_id: str, now: datetime) -> None:
        """Record a successful publish (status ``published`` and the message id)."""

    def note_publish_failure(self, event_id: str, *, error: str, now: datetime) -> None:
        """Record a failed publish attempt; the status stays ``received``."""


class FirstDeliveryLog(Protocol):
    """The two writes of a new token carrying a new body, as one atomic commit (one round trip).

    Most deliveries are exactly that; when either document already exists, nothing is written
    and the core falls back to the ledger and audit-log ports one step at a time, which tell a
    duplicate from a reuse.
    """

    def create_first(
        self, record: AuditRecord, *, fingerprint: str, expires_at: datetime, now: datetime
    ) -> bool:
        """Create the token's ledger entry and the record together; ``False`` if either exists."""


class DeliveryTracing(Protocol):
    """Spans of a delivery at the webhook's edge (``adapters.tracing``; without it, none)."""

    def request(
        self, *, traceparent: str | None, cloud_trace_context: str | None
    ) -> AbstractContextManager[None]:
        """The delivery's span: a child of the trace the caller's headers carry, if any."""

    def step(self, name: str) -> AbstractContextManager[None]:
        """A span of one step of the delivery, under the current one."""


# A bound of a scan's range on the shape's order field: a time, or text (the event id).
RangeBound = datetime | str


class AuditReader(Protocol):
    """Reads the audit log page by page; memory stays bounded by the page size."""

    def get(self, event_id: str) -> AuditRecord | None:
        """The stored record, or ``None``."""

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
        """Records matching ``equals`` with ``lower <= order field < upper``, in shape order.

        Only catalogued shapes (``p0_receiver.core.queries.QUERY_SHAPES``) are accepted; ``fields``
        projects the records (the order field is always included).
        """


class Quarantine(Protocol):
    """Keeps authentic bodies the receiver refused, bounded per token fingerprint."""

    def keep(
        self, refused: RefusedBody, *, now: datetime, retention_days: int, max_per_token: int
    ) -> QuarantineReceipt:
        """Create the entry or count a repeat, atomically; never more than ``max_per_token``
        entries per token fingerprint. Raises ``DownstreamUnavailableError`` if unreachable."""


class QuarantineDesk(Protocol):
    """The operator's side of the quarantine: list, read, mark released, discard."""

    def list_entries(
        self, *, limit: int | None = None, reason: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Entries newest receipt first (only those kept for ``reason`` when given), without
        their bodies (a listing needs none)."""

    def get(self, quarantine_id: str) -> dict[str, Any] | None:
        """The whole entry, body included, or ``None``."""

    def mark_released(self, quarantine_id: str, *, event_id: str, now: datetime) -> bool:
        """Note that the entry's body is now the audit record ``event_id``; ``False`` if the
        entry is gone (discarded by another operator, or past its retention)."""

    def discard(self, quarantine_id: str) -> bool:
        """Delete the entry; ``False`` if there was none."""


class EventPublisher(Protocol):
    """Puts one message on the events topic and waits for the server's message id."""

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        """Publish and wait (bounded); return the message id or raise."""


@dataclass(frozen=True)
class ArchiveLocation:
    """``gs://BUCKET[/PREFIX]``: where the Cloud Storage subscription writes its objects."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, uri: str) -> ArchiveLocation:
        if not uri.startswith("gs://"):
            raise ValueError(f"{uri!r} is not a gs://BUCKET[/PREFIX] URI")
        bucket, _, prefix = uri.removeprefix("gs://").partition("/")
        if not bucket:
            raise ValueError(f"{uri!r} names no bucket")
        return cls(bucket, prefix)

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class ArchivedMessage:
    """One message as the Cloud Storage subscription wrote it (Avro with metadata)."""

    message_id: str
    publish_time: datetime
    attributes: Mapping[str, str]
    data: bytes
    source: str  # the object it was read from


class ArchiveReader(Protocol):
    """Streams archived messages object by object; memory does not grow with the archive."""

    def messages(
        self, location: ArchiveLocation, *, since: datetime | None, until: datetime
    ) -> Iterator[ArchivedMessage]:
        """Messages published in ``[since, until)``. Raises ``DownstreamUnavailableError``
        when Cloud Storage fails and ``ArchiveFormatError`` for an object it cannot read."""


# --- what doctor reads (read-only) ----------------------------------------------------------


@dataclass(frozen=True)
class Unavailable:
    """A port this environment cannot offer (the emulators have no admin API): its checks skip."""

    reason: str


class FirestoreProbe(Protocol):
    def read_one(self, collection: str) -> None:
        """Read at most one document of ``collection``: the database exists and answers."""


@dataclass(frozen=True)
class IndexState:
    """A collection-scoped composite index as the database reports it (``__name__`` dropped)."""

    spec: IndexSpec
    state: str  # READY, CREATING or NEEDS_REPAIR


class FirestoreAdmin(Protocol):
    def ttl_policies(self) -> Mapping[tuple[str, str], str]:
        """Every TTL policy of the database: (collection group, field) -> its state
        (ACTIVE, CREATING or NEEDS_REPAIR)."""

    def composite_indexes(self, collection: str) -> Sequence[IndexState]:
        """The collection's collection-scoped composite indexes."""


class TopicAdmin(Protocol):
    def topic_exists(self, topic_path: str) -> bool: ...


@dataclass(frozen=True)
class Grant:
    """One binding of a resource's IAM policy."""

    role: str
    members: frozenset[str]
    conditional: bool = False


class TopicPolicy(Protocol):
    def grants(self, topic_path: str) -> Sequence[Grant]:
        """The bindings of the topic's own IAM policy (not those inherited from the project)."""


class SecretVersions(Protocol):
    def enabled_versions(self, secret_name: str) -> Sequence[str] | None:
        """Ids of the secret's enabled versions, newest first; ``None``: no such secret.

        Lists versions only: never reads a version's payload.
        """


@dataclass(frozen=True)
class DoctorPorts:
    firestore: FirestoreProbe
    firestore_admin: FirestoreAdmin | Unavailable
    topics: TopicAdmin
    topic_policy: TopicPolicy | Unavailable
    secrets: SecretVersions | Unavailable
