"""Structured logging in Cloud Logging's JSON line format (one object per line on stdout).

Log messages are event names (``p0_delivery``, ``p0_token_replay``); everything else is a
field. Nothing here ever receives a token or a body.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

LOGGER_NAME = "p0_receiver"
TRACE_FIELD = "logging.googleapis.com/trace"
_FIELDS_ATTRIBUTE = "json_fields"
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/\d+)?(?:;o=[01])?$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


class CloudLoggingFormatter(logging.Formatter):
    """Renders a record as the JSON object Cloud Logging parses into ``jsonPayload``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": getattr(record, "severity", record.levelname),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "logger": record.name,
        }
        entry.update(getattr(record, _FIELDS_ATTRIBUTE, {}))
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(level: int = logging.INFO) -> logging.Logger:
    """Attach the JSON handler once (idempotent; called by the composition root)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h.formatter, CloudLoggingFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(CloudLoggingFormatter())
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = True
    return logger


_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "NOTICE": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
    "ALERT": logging.CRITICAL,
}


def log_event(severity: str, event: str, fields: Mapping[str, Any]) -> None:
    """Emit one structured line; ``severity`` is Cloud Logging's (ALERT is above ERROR)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.log(
        _LEVELS[severity],
        event,
        extra={
            "severity": severity,
            _FIELDS_ATTRIBUTE: {k: v for k, v in fields.items() if v is not None},
        },
    )


def trace_field(project: str, cloud_trace: str | None, traceparent: str | None) -> str | None:
    """The trace resource name from Google's or W3C's header; anything malformed is ignored."""
    for header, pattern in ((cloud_trace, _CLOUD_TRACE), (traceparent, _TRACEPARENT)):
        if header and (match := pattern.match(header.strip())):
            return f"projects/{project}/traces/{match.group(1).lower()}"
    return None
