"""Audit records written by the receiver's own code, and the operator CLI run against them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner, Result

from p0_receiver.bootstrap.webhook import build_verifier, google_backends
from p0_receiver.core.errors import DownstreamUnavailableError
from p0_receiver.core.events import event_id_for
from p0_receiver.devtools.simulator import DevKeypair
from p0_receiver.entrypoints.cli import main
from p0_receiver.entrypoints.cli.operator import OperatorContext
from p0_receiver.settings import load_settings
from p0_receiver.usecases.deliver import DeliveryPolicy, DeliveryService
from tests.conftest import Stack
from tests.support import token

# The CLI's "now" in these tests: relative windows (--since 7d) are measured from here.
NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def request_body(
    event_type: str,
    *,
    object_id: str,
    principal: str,
    permission: str,
    reason: str,
    updated: datetime,
    approver: str | None = None,
    notifier: str = "p0-notifier",
) -> bytes:
    """A request-* delivery shaped like the sample P0 request event."""
    data: dict[str, Any] = {
        "id": object_id,
        "type": "gcloud",
        "access": "role",
        "status": event_type.removeprefix("request-").upper(),
        "requestor": principal,
        "principal": principal,
        "permission": {"name": permission, "description": f"{permission} (role)"},
        "reason": reason,
        "requestedTimestamp": millis(updated - timedelta(minutes=5)),
        "lastUpdatedTimestamp": millis(updated),
    }
    if approver:
        data["approvalDetails"] = {
            "approvalSource": "slack",
            "approvedTimestamp": millis(updated),
            "name": approver.split("@")[0].title(),
            "email": approver,
        }
    envelope = {"id": notifier, "name": "P0 notifier", "eventType": event_type, "data": data}
    return json.dumps(envelope, separators=(",", ":")).encode()


def preapproval_body(
    *, object_id: str, principal: str, approver: str, created: datetime, notifier: str
) -> bytes:
    data = {
        "id": object_id,
        "type": "ssh",
        "access": "session",
        "permission": {"name": "demo-node-1", "description": "sudo SSH access to demo-node-1"},
        "startsAt": millis(created),
        "endsAt": millis(created + timedelta(hours=8)),
        "createdAt": millis(created),
        "principal": principal,
        "approver": {
            "id": approver,
            "name": approver.split("@", maxsplit=1)[0].title(),
            "email": approver,
            "approvalTimestamp": millis(created),
            "approvalSource": "webapp",
        },
        "reason": "On-call week",
    }
    envelope = {
        "id": notifier,
        "name": "P0 notifier",
        "eventType": "preapproval-created",
        "data": data,
    }
    return json.dumps(envelope, indent=2).encode()  # P0's spacing is kept verbatim


class Receiver:
    """The delivery service on the real Firestore and Pub/Sub adapters of a test stack."""

    def __init__(
        self, stack: Stack, *, topic: str | None = None, public_keys: str | None = None
    ) -> None:
        keys = {} if public_keys is None else {"P0_PUBLIC_KEYS": public_keys}
        settings = load_settings(stack.function_env(PUBSUB_TOPIC=topic or stack.topic, **keys))
        backends = google_backends(settings)
        self._service = DeliveryService(
            build_verifier(settings),
            backends.ledger,
            backends.audit_log,
            backends.publisher,
            DeliveryPolicy(
                retention_days=settings.audit_retention_days,
                reject_unknown_event_types=False,
                leeway_seconds=settings.jwt_leeway_seconds,
            ),
            quarantine=backends.quarantine,
        )

    def deliver(self, body: bytes, *, at: datetime, key: DevKeypair | None = None) -> str:
        """Accept one delivery received at ``at``; a failed publish leaves it 'received'."""
        verified = self._service.authenticate(f"Bearer {token(key, jti=uuid.uuid4().hex)}")
        try:
            return self._service.accept(verified, body, now=at).event_id
        except DownstreamUnavailableError:
            return event_id_for(json.loads(body))


def tamper(stack: Stack, event_id: str, **fields: Any) -> None:
    """Edit a stored record behind the receiver's back, as someone with database access could."""
    from google.cloud import firestore

    client = firestore.Client(project=stack.project)
    client.collection(stack.collection).document(event_id).update(fields)


def cli(
    stack: Stack,
    *args: str,
    page_size: int = 2,
    now: datetime = NOW,
    env: dict[str, str] | None = None,
    process_env: dict[str, str] | None = None,
) -> Result:
    environ = {
        **stack.emulator_env,
        "GOOGLE_CLOUD_PROJECT": stack.project,
        "PUBSUB_TOPIC": stack.topic,
        **(env or {}),
    }
    context = OperatorContext(environ=environ, page_size=page_size, clock=lambda: now)
    return CliRunner().invoke(main, list(args), obj=context, env=process_env)


def jsonl(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]
