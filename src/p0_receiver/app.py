"""Composition root: settings, keys and the verifier at cold start; Google clients on first use.

Nothing here runs at import time. ``main.py`` calls ``build_target`` once per process: the
webhook (``build_webhook``) or the scheduled redrive (``build_redrive``), whichever target the
process serves; the operator CLI gets its adapters from ``google_audit_backends``,
``google_publisher``, ``google_quarantine_desk`` and ``google_archive``, and ``doctor`` its
read-only probes from ``google_doctor_ports``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from p0_receiver.errors import ConfigurationError, DownstreamUnavailableError, ReceiverError
from p0_receiver.keys import parse_public_keys, usable_algorithms
from p0_receiver.logs import configure_logging, log_event
from p0_receiver.ports import (
    ArchiveReader,
    AuditLog,
    AuditReader,
    EventPublisher,
    FirstDeliveryLog,
    Quarantine,
    QuarantineDesk,
    TokenLedger,
)
from p0_receiver.repair import RepairPorts
from p0_receiver.service import DeliveryPolicy, DeliveryService
from p0_receiver.settings import (
    OperatorSettings,
    Settings,
    load_redrive_settings,
    load_settings,
)
from p0_receiver.tokens import TokenPolicy, TokenVerifier

if TYPE_CHECKING:
    from google.cloud.firestore_admin_v1 import FirestoreAdminClient

    from p0_receiver.doctor import DoctorPorts
    from p0_receiver.http import RedriveHandler, WebhookHandler


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


@dataclass(frozen=True)
class Backends:
    ledger: TokenLedger
    audit_log: AuditLog
    publisher: EventPublisher
    quarantine: Quarantine
    # Optional: without it every delivery takes the step-by-step path (same semantics).
    first_delivery: FirstDeliveryLog | None = None
    # Opens the network connections ahead of the first delivery (best effort); the warm-up
    # thread calls it, a request never does. Returns the services that did not connect in time.
    connect: Callable[[], list[str]] = list


def import_google_adapters() -> None:
    """Load the Firestore and Pub/Sub adapters and their client libraries into this process."""
    import p0_receiver.adapters.firestore
    import p0_receiver.adapters.pubsub  # noqa: F401


def google_backends(settings: Settings) -> Backends:
    """Firestore and Pub/Sub adapters (the emulators when their *_EMULATOR_HOST is set)."""
    # Imported here: the Google clients cost ~400 ms of import, paid on first use only.
    from p0_receiver.adapters import firestore, pubsub

    client = firestore.firestore_client(settings.project, settings.firestore_database)
    publisher = pubsub.publisher_client()
    timeout = settings.firestore_timeout_seconds

    def connect() -> list[str]:
        late = []
        if not firestore.connect_channel(client, timeout):
            late.append("Firestore")
        if not pubsub.connect_channel(publisher, settings.publish_timeout_seconds):
            late.append("Pub/Sub")
        return late

    return Backends(
        ledger=firestore.FirestoreTokenLedger(client, settings.token_collection, timeout),
        audit_log=firestore.FirestoreAuditLog(client, settings.firestore_collection, timeout),
        publisher=pubsub.PubSubPublisher(
            publisher,
            settings.topic_path,
            settings.publish_timeout_seconds,
        ),
        quarantine=firestore.FirestoreQuarantine(client, settings.quarantine_collection, timeout),
        first_delivery=firestore.FirestoreFirstDelivery(
            client,
            ledger_collection=settings.token_collection,
            audit_collection=settings.firestore_collection,
            timeout_seconds=timeout,
        ),
        connect=connect,
    )


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
    from p0_receiver.doctor import DoctorPorts, Unavailable

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


class Lazy[T]:
    """Builds a value on first call, once, even when many request threads race for it."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
        return self._value

    def build_in_background(
        self,
        on_failure: Callable[[ReceiverError], None],
        on_ready: Callable[[float], None] = lambda _: None,
    ) -> None:
        """Start building now on a daemon thread; a request that comes first waits for it.

        A deliberate failure (``ReceiverError``) is reported and left for the next call to
        retry; anything else is a bug and surfaces on the request path as one. ``on_ready``
        gets the seconds the build took.
        """

        def build() -> None:
            started = time.perf_counter()
            try:
                self()
            except ReceiverError as failure:
                on_failure(failure)
            else:
                on_ready(time.perf_counter() - started)

        threading.Thread(target=build, name="warm-up", daemon=True).start()

    def build_after_fork(
        self,
        on_failure: Callable[[ReceiverError], None],
        on_ready: Callable[[float], None] = lambda _: None,
    ) -> None:
        """Build in the background in every process forked from this one, never in this one.

        functions-framework imports main.py in gunicorn's master and then forks the workers:
        a thread or a gRPC channel started before the fork would be copied half-way (a held
        lock, a dead thread), so each worker warms up its own clients right after the fork.
        """
        os.register_at_fork(after_in_child=lambda: self.build_in_background(on_failure, on_ready))


def build_verifier(settings: Settings) -> TokenVerifier:
    variable = "P0_PUBLIC_KEYS" if settings.public_keys is not None else "P0_PUBLIC_KEYS_FILE"
    keys = parse_public_keys(settings.read_public_keys(), variable=variable)
    allowed = settings.jwt_algorithms
    usable_algorithms(keys, allowed)
    return TokenVerifier(
        keys,
        TokenPolicy(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            subject=settings.jwt_subject,
            leeway_seconds=settings.jwt_leeway_seconds,
            max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
            algorithms=allowed,
        ),
    )


def warn_unpinned_claims(settings: Settings) -> None:
    """RFC 8725 §3.9: without a pinned issuer and audience, a token P0 minted for another
    receiver (or another tenant) verifies here too. Say so once per cold start."""
    unpinned = [
        claim
        for claim, value in (("iss", settings.jwt_issuer), ("aud", settings.jwt_audience))
        if value is None
    ]
    if unpinned:
        log_event(
            "WARNING",
            "p0_claims_unpinned",
            {
                "claims": unpinned,
                "fix": "set P0_JWT_ISSUER and P0_JWT_AUDIENCE to the values P0's tokens carry",
            },
        )


def build_webhook(
    environ: Mapping[str, str],
    *,
    backends: Callable[[Settings], Backends] = google_backends,
    clock: Callable[[], datetime] = utc_now,
    warm_up: bool = False,
) -> WebhookHandler:
    """Validate configuration now (a bad deploy fails at cold start); connect lazily.

    ``warm_up`` imports the Google client libraries now, in this process, and makes every
    worker forked from it build its clients on a background thread as it starts, so a cold
    instance's first request pays for neither.
    """
    # Imported here: the operator CLI composes from this module too, and needs no Flask.
    from p0_receiver.http import WebhookHandler

    configure_logging()
    try:
        settings = load_settings(environ)
        verifier = build_verifier(settings)
    except ConfigurationError as problem:
        # One searchable line before the crash that stops the instance (and a bad deploy).
        log_event(problem.severity, "p0_configuration_error", problem.log_fields())
        raise
    warn_unpinned_claims(settings)
    policy = DeliveryPolicy(
        retention_days=settings.audit_retention_days,
        reject_unknown_event_types=settings.reject_unknown_event_types,
        leeway_seconds=settings.jwt_leeway_seconds,
        token_reuse=settings.token_reuse,
        token_burst_seconds=settings.token_burst_seconds,
        quarantine_retention_days=settings.quarantine_retention_days,
        quarantine_max_per_token=settings.quarantine_max_per_token,
        review=settings.review_policy(),
    )

    built: list[Backends] = []

    def build_service() -> DeliveryService:
        try:
            chosen = backends(settings)
        except Exception as exc:
            # e.g. no credentials yet on a fresh instance: retryable, and the next request
            # builds again (Lazy keeps nothing on failure). Class name only: no message text.
            raise DownstreamUnavailableError(
                "clients_unavailable", detail=type(exc).__name__
            ) from exc
        service_built = DeliveryService(
            verifier,
            chosen.ledger,
            chosen.audit_log,
            chosen.publisher,
            policy,
            quarantine=chosen.quarantine,
            first_delivery=chosen.first_delivery,
        )
        built.append(chosen)
        return service_built

    def warmed_up(seconds: float) -> None:
        started = time.perf_counter()
        late = [name for chosen in built for name in chosen.connect()]
        fields: dict[str, object] = {
            "ms": round(seconds * 1000),
            "connectMs": round((time.perf_counter() - started) * 1000),
        }
        if late:
            fields["notConnected"] = late  # the first delivery connects, as without warm-up
        log_event("INFO", "p0_warm_up_done", fields)

    service = Lazy(build_service)
    if warm_up:
        # Imported before gunicorn forks, once (measured: the two workers importing ~0.5 s of
        # client libraries each, at once, held the first request for ~1 s on two cores).
        # Modules are safe to inherit across a fork; threads and gRPC channels are not, so the
        # clients are built, and their connections opened, after it.
        import_google_adapters()
        service.build_after_fork(
            lambda failure: log_event("WARNING", "p0_warm_up_failed", failure.log_fields()),
            warmed_up,
        )
    return WebhookHandler(
        service,
        project=settings.project,
        max_body_bytes=settings.max_body_bytes,
        retry_after_seconds=settings.retry_after_seconds,
        clock=clock,
    )


def google_repair_ports(settings: OperatorSettings) -> RepairPorts:
    """The audit log and the topic, for the scheduled redrive (as the CLI's redrive gets them)."""
    audit = google_audit_backends(settings)
    return RepairPorts(audit.reader, audit.audit_log, google_publisher(settings))


def build_redrive(
    environ: Mapping[str, str],
    *,
    ports: Callable[[OperatorSettings], RepairPorts] = google_repair_ports,
    clock: Callable[[], datetime] = utc_now,
) -> RedriveHandler:
    """The scheduled redrive target: settings validated now, clients on the first pass."""
    from p0_receiver.http import RedriveHandler

    configure_logging()
    try:
        settings = load_redrive_settings(environ)
    except ConfigurationError as problem:
        log_event(problem.severity, "p0_configuration_error", problem.log_fields())
        raise

    def connect() -> RepairPorts:
        try:
            return ports(settings)
        except DownstreamUnavailableError:
            raise
        except Exception as exc:
            raise DownstreamUnavailableError(
                "clients_unavailable", detail=type(exc).__name__
            ) from exc

    return RedriveHandler(
        Lazy(connect),
        project=settings.project,
        min_age=timedelta(seconds=settings.redrive_min_age_seconds),
        max_records=settings.redrive_max_records,
        clock=clock,
    )


# The targets main.py serves; functions-framework names the one it serves in FUNCTION_TARGET
# before it imports main.py, so a deploy builds (and validates) only its own.
TARGETS = ("receive", "redrive")


def build_target(
    environ: Mapping[str, str], *, warm_up: bool = False
) -> WebhookHandler | RedriveHandler:
    """The handler of the target this process serves (``receive`` when none is named).

    ``warm_up`` is the webhook's (see ``build_webhook``); a redrive pass builds its clients
    when it runs.
    """
    target = environ.get("FUNCTION_TARGET") or "receive"
    if target == "receive":
        return build_webhook(environ, warm_up=warm_up)
    if target == "redrive":
        return build_redrive(environ)
    problem = ConfigurationError("FUNCTION_TARGET", f"must be one of {', '.join(TARGETS)}")
    log_event(problem.severity, "p0_configuration_error", problem.log_fields())
    raise problem
