"""Composition of the webhook: settings, keys and the verifier at cold start; clients on first use.

Nothing here runs at import time. ``build_webhook`` validates the configuration (a bad deploy
fails at cold start, naming the variable) and hands the HTTP edge a delivery service whose
Firestore and Pub/Sub adapters are built once, on first use or on the warm-up thread. It
composes only what a delivery runs: none of the redrive, the CLI, doctor or the read side.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from p0_receiver.adapters.clock import utc_now
from p0_receiver.adapters.lazy import Lazy
from p0_receiver.adapters.logs import configure_logging, log_event
from p0_receiver.bootstrap.common import log_configuration_error
from p0_receiver.core.errors import ConfigurationError, DownstreamUnavailableError
from p0_receiver.core.keys import parse_public_keys, usable_algorithms
from p0_receiver.core.tokens import TokenPolicy, TokenVerifier
from p0_receiver.entrypoints.webhook import WebhookHandler
from p0_receiver.ports import (
    AuditLog,
    DeliveryTracing,
    EventPublisher,
    FirstDeliveryLog,
    Quarantine,
    TokenLedger,
)
from p0_receiver.settings import Settings, Tracing, load_settings
from p0_receiver.usecases.deliver import DeliveryPolicy, DeliveryService


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


def _tracing(settings: Settings) -> tuple[DeliveryTracing, Callable[[Backends], Backends]]:
    """The edge's spans, and the backends wrapped in theirs (``TRACING=on``).

    Imported here, and only then: with tracing off, nothing of OpenTelemetry is loaded.
    """
    from p0_receiver.adapters import tracing

    edge = tracing.OpenTelemetryTracing(tracing.tracer_provider(settings.project))
    tracer = edge.tracer

    def traced(chosen: Backends) -> Backends:
        first = chosen.first_delivery
        return dataclasses.replace(
            chosen,
            ledger=tracing.TracedLedger(chosen.ledger, tracer),
            audit_log=tracing.TracedAuditLog(chosen.audit_log, tracer),
            publisher=tracing.TracedPublisher(chosen.publisher, tracer, settings.topic_path),
            first_delivery=None if first is None else tracing.TracedFirstDelivery(first, tracer),
        )

    return edge, traced


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
    configure_logging()
    try:
        settings = load_settings(environ)
        verifier = build_verifier(settings)
    except ConfigurationError as problem:
        log_configuration_error(problem)
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

    traced: Callable[[Backends], Backends] | None = None
    tracing: DeliveryTracing | None = None
    if settings.tracing is Tracing.ON:
        tracing, traced = _tracing(settings)

    built: list[Backends] = []

    def build_service() -> DeliveryService:
        try:
            chosen = backends(settings)
            if traced is not None:
                chosen = traced(chosen)
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
        tracing=tracing,
    )
