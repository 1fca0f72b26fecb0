"""Composition for the operator commands: settings, clients on first use, errors as messages.

Exit codes: 0 ok, 1 failure (backend, credentials, missing index, integrity), 2 usage
(bad flags or configuration). The errors a user can cause never end in a traceback.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

import click

from p0_receiver.auditlog.errors import OperatorError
from p0_receiver.auditlog.views import AuditReader
from p0_receiver.errors import ConfigurationError, DownstreamUnavailableError
from p0_receiver.ports import AuditLog, EventPublisher
from p0_receiver.settings import OperatorSettings, load_operator_settings

DEFAULT_PAGE_SIZE = 300


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


class ConfigurationProblem(click.ClickException):
    """The environment is wrong (a variable missing or invalid): a usage error, exit 2."""

    exit_code = 2


@dataclass
class OperatorBackends:
    reader: AuditReader
    audit_log: AuditLog


def google_operator_backends(settings: OperatorSettings, page_size: int) -> OperatorBackends:
    """The Firestore reader and writer on one client (the emulator when its host is set)."""
    from p0_receiver.adapters.firestore import FirestoreAuditLog, firestore_client
    from p0_receiver.auditlog.firestore import FirestoreAuditReader, translated_errors

    with translated_errors("Firestore"):
        client = firestore_client(settings.project, settings.firestore_database)
    timeout = settings.firestore_timeout_seconds
    return OperatorBackends(
        reader=FirestoreAuditReader(
            client, settings.firestore_collection, timeout, page_size=page_size
        ),
        audit_log=FirestoreAuditLog(client, settings.firestore_collection, timeout),
    )


def google_publisher(settings: OperatorSettings) -> EventPublisher:
    from p0_receiver.adapters.pubsub import PubSubPublisher, publisher_client
    from p0_receiver.auditlog.firestore import translated_errors

    topic_path = settings.topic_path
    with translated_errors("Pub/Sub"):
        client = publisher_client()
    return PubSubPublisher(client, topic_path, settings.publish_timeout_seconds)


@dataclass
class OperatorContext:
    """What the operator commands share; tests pass one as ``obj`` with fakes or a page size."""

    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    page_size: int = DEFAULT_PAGE_SIZE
    clock: Callable[[], datetime] = utc_now
    connect: Callable[[OperatorSettings, int], OperatorBackends] = google_operator_backends
    connect_publisher: Callable[[OperatorSettings], EventPublisher] = google_publisher
    _settings: OperatorSettings | None = None
    _backends: OperatorBackends | None = None
    _publisher: EventPublisher | None = None

    @property
    def settings(self) -> OperatorSettings:
        if self._settings is None:
            self._settings = load_operator_settings(self.environ)
        return self._settings

    def backends(self) -> OperatorBackends:
        if self._backends is None:
            self._backends = self.connect(self.settings, self.page_size)
        return self._backends

    def reader(self) -> AuditReader:
        return self.backends().reader

    def audit_log(self) -> AuditLog:
        return self.backends().audit_log

    def publisher(self) -> EventPublisher:
        if self._publisher is None:
            self._publisher = self.connect_publisher(self.settings)
        return self._publisher

    def now(self) -> datetime:
        return self.clock()


def operator_context() -> OperatorContext:
    """The context the root command was given, or one reading this process's environment."""
    return click.get_current_context().ensure_object(OperatorContext)


P = ParamSpec("P")
R = TypeVar("R")


def operator_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the failures an operator can meet into one clear line and an exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ConfigurationError as problem:
            raise ConfigurationProblem(
                f"configuration: {problem.variable}: {problem.problem}"
            ) from problem
        except OperatorError as problem:
            raise click.ClickException(str(problem)) from problem
        except DownstreamUnavailableError as problem:
            raise click.ClickException(
                f"{problem.reason}: {problem.detail or 'unknown'} (nothing was marked; "
                "run the command again later)"
            ) from problem

    return run
