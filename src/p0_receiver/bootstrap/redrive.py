"""Composition of the scheduled redrive: settings validated at cold start, clients on a pass.

It composes only what a pass runs (the repair use case, the audit log, the topic); nothing of
the webhook, the CLI or the read side's reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from p0_receiver.adapters.clients import google_audit_backends, google_publisher
from p0_receiver.adapters.clock import utc_now
from p0_receiver.adapters.lazy import Lazy
from p0_receiver.adapters.logs import configure_logging
from p0_receiver.bootstrap.common import log_configuration_error
from p0_receiver.core.errors import ConfigurationError, DownstreamUnavailableError
from p0_receiver.entrypoints.redrive import RedriveHandler
from p0_receiver.settings import OperatorSettings, load_redrive_settings
from p0_receiver.usecases.repair import RepairPorts


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
    configure_logging()
    try:
        settings = load_redrive_settings(environ)
    except ConfigurationError as problem:
        log_configuration_error(problem)
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
