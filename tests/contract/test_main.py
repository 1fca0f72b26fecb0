"""``main.py`` through functions-framework's own app and test client, on the real emulators."""

from __future__ import annotations

import json
from pathlib import Path

import flask
import functions_framework
import pytest
from flask.testing import FlaskClient

from p0_receiver.core.errors import ConfigurationError
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from tests.conftest import Stack
from tests.support import token

pytestmark = pytest.mark.integration
MAIN = str(Path(__file__).resolve().parents[2] / "main.py")


def create_app() -> flask.Flask:
    """The framework's own loader: imports main.py fresh, as a cold start does."""
    app: flask.Flask = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="receive", source=MAIN
    )
    return app


@pytest.fixture
def client(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    for name, value in stack.function_env().items():
        monkeypatch.setenv(name, value)
    return create_app().test_client()


def post(client: FlaskClient, body: bytes = PREAPPROVAL_CREATED, **headers: str) -> object:
    return client.post(
        "/",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token()}",
            **headers,
        },
    )


def test_receive_records_and_publishes(client: FlaskClient, stack: Stack) -> None:
    response = client.post(
        "/",
        data=PREAPPROVAL_CREATED,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token()}"},
    )
    assert response.status_code == 200
    event_id = response.get_json()["eventId"]
    assert response.get_json() == {"status": "accepted", "eventId": event_id}
    record = stack.record(event_id)
    assert record is not None
    assert record["publishStatus"] == "published"
    (message,) = stack.messages()
    assert message.data == PREAPPROVAL_CREATED
    assert message.message_id == record["messageId"]


def test_rejection_through_main_is_json_and_writes_nothing(
    client: FlaskClient, stack: Stack
) -> None:
    response = client.post(
        "/", data=PREAPPROVAL_CREATED, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(response.data)["error"]["reason"] == "missing_token"
    assert stack.nothing_written()


def test_get_through_main_is_405(client: FlaskClient) -> None:
    response = client.get("/")
    assert (response.status_code, response.headers["Allow"]) == (405, "POST")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("P0_JWT_LEEWAY_SECONDS", "9999"), ("P0_PUBLIC_KEYS", "not a key"), ("PUBSUB_TOPIC", "")],
)
def test_bad_configuration_fails_at_cold_start_naming_the_variable(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    for name, setting in stack.function_env(**{variable: value}).items():
        monkeypatch.setenv(name, setting)
    with pytest.raises(ConfigurationError) as caught:
        create_app()
    assert caught.value.variable == variable


def create_redrive_app() -> flask.Flask:
    app: flask.Flask = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="redrive", source=MAIN
    )
    return app


def test_the_redrive_target_publishes_what_a_pubsub_outage_left_received(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack.function_env(PUBSUB_TOPIC="missing-topic").items():
        monkeypatch.setenv(name, value)
    left = create_app().test_client()
    answer = post(left)
    assert getattr(answer, "status_code", None) == 503  # no such topic: left received
    (record,) = stack.records()
    assert record["publishStatus"] == "received"

    # The redrive target's deploy carries no key material: it must not need any.
    monkeypatch.setenv("PUBSUB_TOPIC", stack.topic)
    monkeypatch.delenv("P0_PUBLIC_KEYS")
    monkeypatch.setenv("REDRIVE_MIN_AGE_SECONDS", "0")
    redrive = create_redrive_app().test_client()
    assert redrive.get("/").status_code == 405
    response = redrive.post("/")
    assert response.status_code == 200
    assert response.get_json() == {
        "published": 1,
        "failed": 0,
        "skipped": 0,
        "failedIntegrity": 0,
        "unrecorded": 0,
        "stopped": False,
    }
    (message,) = stack.messages()
    assert message.attributes["eventId"] == record["eventId"]
    assert stack.record(record["eventId"])["publishStatus"] == "published"  # type: ignore[index]
