"""The functions' one composition entry: ``main.py`` asks it for the target the process serves.

functions-framework names the target in ``FUNCTION_TARGET`` before it imports ``main.py``, so a
process composes (and validates) only its own function, and imports only that function's
modules: the webhook's cold start never loads the redrive's, and the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from p0_receiver.bootstrap.common import log_configuration_error
from p0_receiver.core.errors import ConfigurationError

if TYPE_CHECKING:
    from p0_receiver.entrypoints.redrive import RedriveHandler
    from p0_receiver.entrypoints.webhook import WebhookHandler


TARGETS = ("receive", "redrive")


def build_target(
    environ: Mapping[str, str], *, warm_up: bool = False
) -> WebhookHandler | RedriveHandler:
    """The handler of the target this process serves (``receive`` when none is named).

    ``warm_up`` is the webhook's (see ``build_webhook``); a redrive pass builds its clients
    when it runs.
    """
    target = environ.get("FUNCTION_TARGET") or "receive"
    # Imported by target: each function's modules are loaded by that function alone.
    if target == "receive":
        from p0_receiver.bootstrap.webhook import build_webhook

        return build_webhook(environ, warm_up=warm_up)
    if target == "redrive":
        from p0_receiver.bootstrap.redrive import build_redrive

        return build_redrive(environ)
    problem = ConfigurationError("FUNCTION_TARGET", f"must be one of {', '.join(TARGETS)}")
    log_configuration_error(problem)
    raise problem
