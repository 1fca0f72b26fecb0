"""What the operator commands share: settings, adapters on first use, errors as exit codes.

Exit codes: 0 ok, 1 failure (backend, credentials, missing index, integrity), 2 usage
(bad flags or configuration). The errors a user can cause never end in a traceback.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import click

from p0_receiver.adapters.clients import (
    AuditBackends,
    google_archive,
    google_audit_backends,
    google_doctor_ports,
    google_publisher,
    google_quarantine_desk,
    google_token_ledger,
)
from p0_receiver.adapters.clock import utc_now
from p0_receiver.core.errors import ConfigurationError, ReceiverError, ReleaseRefusedError
from p0_receiver.ports import (
    ArchiveReader,
    AuditLog,
    AuditReader,
    DoctorPorts,
    EventPublisher,
    QuarantineDesk,
    TokenLedger,
)
from p0_receiver.settings import OperatorSettings, load_operator_settings


class UsageProblem(click.ClickException):
    """The environment is wrong (a variable missing or invalid): a usage error, exit 2."""

    exit_code = 2


# The error tree's exit codes: the most specific class listed wins; the rest exit 1.
_FAILURES: dict[type[ReceiverError], type[click.ClickException]] = {
    ConfigurationError: UsageProblem,
    ReceiverError: click.ClickException,
}


def operator_failure(error: ReceiverError) -> click.ClickException:
    """The one line click prints for ``error``, with the exit code its class maps to."""
    if isinstance(error, ReleaseRefusedError) and error.needs_flag is not None:
        return click.UsageError(error.for_operator())  # a decision only a flag can make
    kind = next(kind for kind in type(error).__mro__ if kind in _FAILURES)
    return _FAILURES[kind](error.for_operator())


@dataclass
class OperatorContext:
    """What the operator commands share; tests pass one as ``obj`` with fakes or a page size."""

    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    page_size: int | None = None  # None: the adapter's own
    clock: Callable[[], datetime] = utc_now
    connect: Callable[[OperatorSettings, int | None], AuditBackends] = google_audit_backends
    connect_publisher: Callable[[OperatorSettings], EventPublisher] = google_publisher
    connect_archive: Callable[[OperatorSettings], ArchiveReader] = google_archive
    connect_quarantine: Callable[[OperatorSettings], QuarantineDesk] = google_quarantine_desk
    connect_ledger: Callable[[OperatorSettings], TokenLedger] = google_token_ledger
    connect_doctor: Callable[[OperatorSettings, Mapping[str, str]], DoctorPorts] = (
        google_doctor_ports
    )
    _settings: OperatorSettings | None = None
    _backends: AuditBackends | None = None
    _publisher: EventPublisher | None = None
    _archive: ArchiveReader | None = None
    _quarantine: QuarantineDesk | None = None
    _ledger: TokenLedger | None = None

    @property
    def settings(self) -> OperatorSettings:
        if self._settings is None:
            self._settings = load_operator_settings(self.environ)
        return self._settings

    def backends(self) -> AuditBackends:
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

    def archive(self) -> ArchiveReader:
        if self._archive is None:
            self._archive = self.connect_archive(self.settings)
        return self._archive

    def quarantine(self) -> QuarantineDesk:
        if self._quarantine is None:
            self._quarantine = self.connect_quarantine(self.settings)
        return self._quarantine

    def ledger(self) -> TokenLedger:
        if self._ledger is None:
            self._ledger = self.connect_ledger(self.settings)
        return self._ledger

    def now(self) -> datetime:
        return self.clock()


def operator_context() -> OperatorContext:
    """The context the root command was given, or one reading this process's environment."""
    return click.get_current_context().ensure_object(OperatorContext)


def operator_errors[**P, R](command: Callable[P, R]) -> Callable[P, R]:
    """Turn the failures an operator can meet into one clear line and an exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ReceiverError as problem:
            raise operator_failure(problem) from problem

    return run
