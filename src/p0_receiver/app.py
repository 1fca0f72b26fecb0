"""Composition root: settings, keys and the verifier at cold start; Google clients on first use.

Nothing here runs at import time. ``build_webhook`` is called once per process by ``main.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from p0_receiver.errors import ConfigurationError
from p0_receiver.http import WebhookHandler
from p0_receiver.keys import parse_public_keys
from p0_receiver.logs import configure_logging, log_event
from p0_receiver.ports import AuditLog, EventPublisher, TokenLedger
from p0_receiver.service import DeliveryPolicy, DeliveryService
from p0_receiver.settings import Settings, load_settings
from p0_receiver.tokens import TokenPolicy, TokenVerifier


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


@dataclass(frozen=True)
class Backends:
    ledger: TokenLedger
    audit_log: AuditLog
    publisher: EventPublisher


def google_backends(settings: Settings) -> Backends:
    """Firestore and Pub/Sub adapters (the emulators when their *_EMULATOR_HOST is set)."""
    # Imported here: the Google clients cost ~400 ms of import, paid on first use only.
    from p0_receiver.adapters.firestore import (
        FirestoreAuditLog,
        FirestoreTokenLedger,
        firestore_client,
    )
    from p0_receiver.adapters.pubsub import PubSubPublisher, publisher_client

    client = firestore_client(settings.project, settings.firestore_database)
    timeout = settings.firestore_timeout_seconds
    return Backends(
        ledger=FirestoreTokenLedger(client, settings.token_collection, timeout),
        audit_log=FirestoreAuditLog(client, settings.firestore_collection, timeout),
        publisher=PubSubPublisher(
            publisher_client(settings.publish_timeout_seconds),
            settings.topic_path,
            settings.publish_timeout_seconds,
        ),
    )


T = TypeVar("T")


class Lazy(Generic[T]):
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


def build_verifier(settings: Settings) -> TokenVerifier:
    variable = "P0_PUBLIC_KEYS" if settings.public_keys is not None else "P0_PUBLIC_KEYS_FILE"
    keys = parse_public_keys(settings.read_public_keys(), variable=variable)
    return TokenVerifier(
        keys,
        TokenPolicy(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            subject=settings.jwt_subject,
            leeway_seconds=settings.jwt_leeway_seconds,
            max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
        ),
    )


def build_webhook(
    environ: Mapping[str, str],
    *,
    backends: Callable[[Settings], Backends] = google_backends,
    clock: Callable[[], datetime] = utc_now,
) -> WebhookHandler:
    """Validate configuration now (a bad deploy fails at cold start); connect lazily."""
    configure_logging()
    try:
        settings = load_settings(environ)
        verifier = build_verifier(settings)
    except ConfigurationError as problem:
        # One searchable line before the crash that stops the instance (and a bad deploy).
        log_event(
            "CRITICAL",
            "p0_configuration_error",
            {"variable": problem.variable, "problem": problem.problem},
        )
        raise
    policy = DeliveryPolicy(
        retention_days=settings.audit_retention_days,
        reject_unknown_event_types=settings.reject_unknown_event_types,
        leeway_seconds=settings.jwt_leeway_seconds,
    )

    def build_service() -> DeliveryService:
        chosen = backends(settings)
        return DeliveryService(verifier, chosen.ledger, chosen.audit_log, chosen.publisher, policy)

    return WebhookHandler(
        Lazy(build_service),
        project=settings.project,
        max_body_bytes=settings.max_body_bytes,
        retry_after_seconds=settings.retry_after_seconds,
        clock=clock,
    )
