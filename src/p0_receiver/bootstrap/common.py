"""What every function's composition shares: how a bad configuration is told."""

from __future__ import annotations

from p0_receiver.adapters.logs import log_event
from p0_receiver.core.errors import ConfigurationError


def log_configuration_error(problem: ConfigurationError) -> None:
    """One searchable line before the crash that stops the instance (and a bad deploy)."""
    log_event(problem.severity, "p0_configuration_error", problem.log_fields())
