"""The 503 reasons openapi.yaml lists are those the real adapters raise when down.

The reasons are plain strings at each adapter's raise site, so this observes them: the Google
adapters are pointed at loopback ports where nothing listens and every port call is made.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import flask
import pytest

from p0_receiver.bootstrap.webhook import Backends, build_webhook, google_backends
from p0_receiver.core.errors import DownstreamUnavailableError
from p0_receiver.core.events import parse_notification
from p0_receiver.core.keys import parse_public_keys
from p0_receiver.core.record import build_audit_record
from p0_receiver.core.tokens import TokenPolicy, TokenVerifier
from p0_receiver.devtools.emulators import free_port
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.settings import Settings, load_settings
from tests.openapi_document import UNAVAILABLE_REASONS
from tests.support import keypair, token

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _environment() -> dict[str, str]:
    return {
        "GOOGLE_CLOUD_PROJECT": "reasons",
        "PUBSUB_TOPIC": "events",
        "P0_PUBLIC_KEYS": keypair().public_pem.decode(),
        "FIRESTORE_TIMEOUT_SECONDS": "0.3",
        "PUBSUB_PUBLISH_TIMEOUT_SECONDS": "0.3",
    }


def _raised(call: Callable[[], object]) -> str:
    with pytest.raises(DownstreamUnavailableError) as caught:
        call()
    return caught.value.reason


def _answered_reason_when_clients_cannot_be_built() -> str:
    def no_clients(_: Settings) -> Backends:
        raise OSError("no credentials")

    handler = build_webhook(_environment(), backends=no_clients)
    app = flask.Flask(__name__)
    headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    with app.test_request_context("/", method="POST", headers=headers, data=b"{}"):
        answer = handler(flask.request)
    assert answer.status_code == 503
    reason: str = answer.get_json()["error"]["reason"]
    return reason


def test_documented_503_reasons_are_exactly_those_the_adapters_raise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", dead)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", dead)
    backends = google_backends(load_settings(_environment()))
    ledger, audit, publisher = backends.ledger, backends.audit_log, backends.publisher
    verified = TokenVerifier(parse_public_keys(keypair().public_pem.decode()), TokenPolicy())
    verified_token = verified.verify(f"Bearer {token()}")
    notification = parse_notification(PREAPPROVAL_CREATED)
    record = build_audit_record(notification, verified_token, received_at=NOW, retention_days=1)
    event_id, fingerprint = notification.event_id, verified_token.fingerprint
    expires = NOW + timedelta(minutes=5)

    raised = {
        _raised(lambda: ledger.remember(fingerprint, event_id, expires_at=expires, now=NOW)),
        _raised(lambda: ledger.accept_reuse(fingerprint, event_id, now=NOW)),
        _raised(lambda: audit.create(record)),
        _raised(lambda: audit.note_redelivery(event_id, now=NOW)),
        _raised(lambda: audit.mark_published(event_id, message_id="1", now=NOW)),
        _raised(lambda: audit.note_publish_failure(event_id, error="x", now=NOW)),
        _raised(lambda: publisher.publish(PREAPPROVAL_CREATED, {})),
        _answered_reason_when_clients_cannot_be_built(),
    }
    first_delivery = backends.first_delivery
    if first_delivery is not None:  # the one-round-trip path of a first delivery
        raised.add(
            _raised(
                lambda: first_delivery.create_first(
                    record, fingerprint=fingerprint, expires_at=expires, now=NOW
                )
            )
        )
    # The quarantine's own outage is never answered: the refusal's 4xx stands
    # (docs/http-contract.md, "Quarantine").
    assert raised == set(UNAVAILABLE_REASONS)
