"""The operator's adapters, each built from the settings on its own Google client.

The CLI's commands and the scheduled redrive connect through these; every client library is
imported inside the function that needs it, so a command (or a function) pays only for its own.
With an emulator host set, the Firestore, Pub/Sub and Cloud Storage clients talk to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p0_receiver.adapters.lazy import Lazy
from p0_receiver.ports import (
    ArchiveReader,
    AuditLog,
    AuditReader,
    DoctorPorts,
    EventPublisher,
    QuarantineDesk,
    TokenLedger,
    Unavailable,
)
from p0_receiver.settings import OperatorSettings

if TYPE_CHECKING:
    from google.cloud.firestore_admin_v1 import FirestoreAdminClient


@dataclass(frozen=True)
class AuditBackends:
    """The audit log to read and to repair: what the operator's commands work on."""

    reader: AuditReader
    audit_log: AuditLog


def google_audit_backends(
    settings: OperatorSettings, page_size: int | None = None
) -> AuditBackends:
    """The Firestore reader and writer on one client (the emulator when its host is set)."""
    from p0_receiver.adapters.firestore import (
        FirestoreAuditLog,
        FirestoreAuditReader,
        firestore_client,
    )
    from p0_receiver.adapters.google_errors import translated

    with translated("Firestore", "audit_unavailable"):
        client = firestore_client(settings.project, settings.firestore_database)
    timeout = settings.firestore_timeout_seconds
    collection = settings.firestore_collection
    paging = {} if page_size is None else {"page_size": page_size}
    return AuditBackends(
        reader=FirestoreAuditReader(client, collection, timeout, **paging),
        audit_log=FirestoreAuditLog(client, collection, timeout),
    )


def google_publisher(settings: OperatorSettings) -> EventPublisher:
    """A publisher to the configured topic (``PUBSUB_TOPIC`` is required from here on)."""
    from p0_receiver.adapters.google_errors import translated
    from p0_receiver.adapters.pubsub import PubSubPublisher, publisher_client

    topic_path = settings.topic_path
    with translated("Pub/Sub", "publish_failed"):
        client = publisher_client()
    return PubSubPublisher(client, topic_path, settings.publish_timeout_seconds)


def google_archive(settings: OperatorSettings) -> ArchiveReader:
    """The archive's Avro objects in Cloud Storage (the emulator when its host is set)."""
    from p0_receiver.adapters.archive import CloudStorageArchive, storage_client
    from p0_receiver.adapters.google_errors import translated

    with translated("Cloud Storage", "archive_unavailable"):
        client = storage_client(settings.project)
    return CloudStorageArchive(client)


def google_quarantine_desk(settings: OperatorSettings) -> QuarantineDesk:
    """The quarantine collection, for an operator to list, release and discard."""
    from p0_receiver.adapters.firestore import FirestoreQuarantine, firestore_client
    from p0_receiver.adapters.google_errors import translated

    with translated("Firestore", "quarantine_unavailable"):
        client = firestore_client(settings.project, settings.firestore_database)
    return FirestoreQuarantine(
        client, settings.quarantine_collection, settings.firestore_timeout_seconds
    )


def google_token_ledger(settings: OperatorSettings) -> TokenLedger:
    """The replay ledger, for a release to accept a reused token's body under its token."""
    from p0_receiver.adapters.firestore import FirestoreTokenLedger, firestore_client
    from p0_receiver.adapters.google_errors import translated

    with translated("Firestore", "ledger_unavailable"):
        client = firestore_client(settings.project, settings.firestore_database)
    return FirestoreTokenLedger(
        client, settings.token_collection, settings.firestore_timeout_seconds
    )


def google_doctor_ports(settings: OperatorSettings, environ: Mapping[str, str]) -> DoctorPorts:
    """What ``doctor`` reads, each client built on its first use.

    The emulators have no Firestore admin API, no IAM and no Secret Manager: with an emulator
    host set, those ports are ``Unavailable`` and their checks say so.
    """
    from p0_receiver.adapters.firestore import firestore_client
    from p0_receiver.adapters.inspection import (
        FirestoreAdminInspector,
        FirestoreReadProbe,
        PubSubTopicInspector,
        SecretManagerVersions,
        authorized_session,
    )
    from p0_receiver.adapters.pubsub import publisher_client

    def firestore_admin_client() -> FirestoreAdminClient:
        from google.cloud.firestore_admin_v1 import FirestoreAdminClient

        return FirestoreAdminClient()

    timeout = settings.firestore_timeout_seconds
    firestore_emulator = environ.get("FIRESTORE_EMULATOR_HOST")
    pubsub_emulator = environ.get("PUBSUB_EMULATOR_HOST")
    topics = PubSubTopicInspector(Lazy(publisher_client), timeout)
    return DoctorPorts(
        firestore=FirestoreReadProbe(
            Lazy(lambda: firestore_client(settings.project, settings.firestore_database)),
            timeout,
        ),
        firestore_admin=(
            Unavailable("emulator (the Firestore emulator has no admin API)")
            if firestore_emulator
            else FirestoreAdminInspector(
                Lazy(firestore_admin_client), settings.project, settings.firestore_database, timeout
            )
        ),
        topics=topics,
        topic_policy=(
            Unavailable("emulator (the Pub/Sub emulator has no IAM)") if pubsub_emulator else topics
        ),
        secrets=(
            Unavailable("emulator (a local run reads P0_PUBLIC_KEYS; no Secret Manager)")
            if firestore_emulator or pubsub_emulator
            else SecretManagerVersions(Lazy(authorized_session), timeout)
        ),
    )
