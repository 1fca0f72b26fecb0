"""Two functions-framework targets with no I/O, to show what the HTTP edge itself costs.

``receive``: the product's edge (transport checks, verify, parse, record, attributes, log line)
over in-memory ports. ``bare``: a handler that only verifies the token and parses the envelope.
Only ``benchmarks/versus_baseline.py`` serves them; they are not part of the product.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import flask
import functions_framework
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import BaseModel, ValidationError

from p0_receiver.bootstrap.webhook import Backends, build_webhook
from p0_receiver.core.quarantine import QuarantineReceipt, QuarantineStatus, RefusedBody
from p0_receiver.core.record import AuditRecord
from p0_receiver.ports import TokenHistory


class _Ledger:
    def remember(
        self, fingerprint: str, event_id: str, *, expires_at: datetime, now: datetime
    ) -> TokenHistory:
        return TokenHistory(event_id, frozenset({event_id}))

    def accept_reuse(self, fingerprint: str, event_id: str, *, now: datetime) -> bool:
        """Never reached: every token is new."""
        return False


class _AuditLog:
    def create(self, record: AuditRecord) -> bool:
        return True

    def note_redelivery(self, event_id: str, *, now: datetime) -> AuditRecord:
        raise NotImplementedError

    def mark_published(self, event_id: str, *, message_id: str, now: datetime) -> None:
        """Nothing to keep."""

    def note_publish_failure(self, event_id: str, *, error: str, now: datetime) -> None:
        """Nothing to keep."""


class _Publisher:
    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        return str(next(self._ids))


class _Quarantine:
    def keep(
        self, refused: RefusedBody, *, now: datetime, retention_days: int, max_per_token: int
    ) -> QuarantineReceipt:
        return QuarantineReceipt(refused.quarantine_id, refused.reason, QuarantineStatus.STORED)


_webhook = build_webhook(
    os.environ,
    backends=lambda _: Backends(_Ledger(), _AuditLog(), _Publisher(), _Quarantine()),
)
_KEY = load_pem_public_key(os.environ["P0_PUBLIC_KEYS"].encode())


class _Envelope(BaseModel):
    id: str
    name: str
    eventType: str  # noqa: N815
    data: dict[str, Any]


@functions_framework.http
def receive(request: flask.Request) -> flask.Response:
    return _webhook(request)


@functions_framework.http
def bare(request: flask.Request) -> flask.Response:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        jwt.decode(token, _KEY, algorithms=["ES256"], options={"verify_aud": False})  # type: ignore[arg-type]
        _Envelope.model_validate_json(request.get_data())
    except (jwt.InvalidTokenError, ValidationError):
        return flask.Response('{"error":{}}', status=400, mimetype="application/json")
    return flask.Response(json.dumps({"status": "accepted"}), mimetype="application/json")
