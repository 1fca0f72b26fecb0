"""The scheduled redrive target over in-memory ports: answers, bounds, log lines, overlap."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta

import flask
import pytest
from werkzeug.test import TestResponse

from p0_receiver.adapters.logs import LOGGER_NAME, CloudLoggingFormatter
from p0_receiver.bootstrap.functions import build_target
from p0_receiver.bootstrap.redrive import build_redrive
from p0_receiver.core.errors import ConfigurationError
from p0_receiver.settings import OperatorSettings
from p0_receiver.usecases import repair
from p0_receiver.usecases.repair import RepairPorts
from tests.fakes import InMemoryAuditLog, InMemoryAuditReader, InMemoryPublisher
from tests.unit.audit_records import NOW, body, store

ENV = {"GOOGLE_CLOUD_PROJECT": "acme", "PUBSUB_TOPIC": "p0"}


class Target:
    def __init__(self, **env: str) -> None:
        self.audit = InMemoryAuditLog()
        self.reader = InMemoryAuditReader(self.audit)
        self.publisher = InMemoryPublisher()
        self.connects = 0
        self.fail_connect = False
        handler = build_redrive({**ENV, **env}, ports=self._ports, clock=lambda: NOW)
        app = flask.Flask("redrive")
        app.add_url_rule("/", "redrive", lambda: handler(flask.request), methods=["GET", "POST"])
        self.client = app.test_client()

    def _ports(self, _: OperatorSettings) -> RepairPorts:
        self.connects += 1
        if self.fail_connect:
            raise RuntimeError("no credentials yet")
        return RepairPorts(self.reader, self.audit, self.publisher)

    def post(self) -> TestResponse:
        return self.client.post("/")

    def received(self, n: int, *, age: timedelta = timedelta(hours=1)) -> list[str]:
        return [store(self.audit, body(f"obj-{i}"), age=age) for i in range(n)]


def test_a_pass_publishes_what_is_left_received_and_answers_its_counts() -> None:
    target = Target()
    waiting = target.received(3)
    store(target.audit, body("done"), age=timedelta(hours=1), published=True)
    response = target.post()
    assert response.status_code == 200
    assert response.get_json() == {
        "published": 3,
        "failed": 0,
        "skipped": 0,
        "failedIntegrity": 0,
        "unrecorded": 0,
        "stopped": False,
    }
    assert {m[2]["eventId"] for m in target.publisher.messages} == set(waiting)
    assert all(target.audit.records[e]["publishStatus"] == "published" for e in waiting)


def test_records_younger_than_the_minimum_age_wait_for_the_next_pass() -> None:
    target = Target(REDRIVE_MIN_AGE_SECONDS="600")
    target.received(1, age=timedelta(minutes=5))
    (old,) = [store(target.audit, body("old"), age=timedelta(minutes=11))]
    assert target.post().get_json()["published"] == 1
    assert [m[2]["eventId"] for m in target.publisher.messages] == [old]


def test_a_pass_is_bounded_by_redrive_max_records() -> None:
    target = Target(REDRIVE_MAX_RECORDS="2")
    target.received(5)
    assert target.post().get_json()["published"] == 2
    assert target.post().get_json()["published"] == 2
    assert target.post().get_json()["published"] == 1


def test_pubsub_still_down_stops_after_three_failures_and_answers_200() -> None:
    target = Target()
    target.received(5)
    target.publisher.unavailable = True
    response = target.post()
    assert response.status_code == 200
    answer = response.get_json()
    assert (answer["published"], answer["failed"], answer["stopped"]) == (0, 3, True)
    assert all(r["publishStatus"] == "received" for r in target.audit.records.values())


def test_a_record_that_fails_the_integrity_check_is_skipped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = Target()
    (tampered,) = target.received(1)
    target.audit.records[tampered]["approver"] = "mallory@evil.example"
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        answer = target.post().get_json()
    assert (answer["skipped"], answer["failedIntegrity"], answer["published"]) == (1, 1, 0)
    assert target.publisher.messages == []
    lines = [json.loads(CloudLoggingFormatter().format(r)) for r in caplog.records]
    refused, summary = lines
    assert (refused["message"], refused["severity"], refused["eventId"]) == (
        "p0_redrive_integrity_failed",
        "ERROR",
        tampered,
    )
    assert "mallory" not in json.dumps(refused)
    assert (summary["message"], summary["severity"], summary["outcome"]) == (
        "p0_redrive",
        "WARNING",
        "incomplete",
    )


def test_firestore_unreachable_is_503_json() -> None:
    target = Target()
    target.received(1)
    target.reader.unavailable = True
    response = target.post()
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["error"]["reason"] == "audit_unavailable"


def test_clients_that_cannot_be_built_are_503_and_built_again_next_time() -> None:
    target = Target()
    target.fail_connect = True
    response = target.post()
    assert (response.status_code, response.get_json()["error"]["reason"]) == (
        503,
        "clients_unavailable",
    )
    target.fail_connect = False
    assert target.post().status_code == 200
    assert target.connects == 2


def test_only_post_runs_a_pass() -> None:
    target = Target()
    target.received(1)
    response = target.client.get("/")
    assert (response.status_code, response.headers["Allow"]) == (405, "POST")
    assert target.publisher.messages == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [("REDRIVE_MIN_AGE_SECONDS", "-1"), ("REDRIVE_MAX_RECORDS", "0"), ("PUBSUB_TOPIC", "")],
)
def test_bad_settings_fail_at_cold_start_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Target(**{variable: value})
    assert caught.value.variable == variable


def test_the_redrive_target_needs_no_key_material_and_the_receiver_still_does() -> None:
    assert build_target({**ENV, "FUNCTION_TARGET": "redrive"}) is not None
    with pytest.raises(ConfigurationError) as caught:
        build_target({**ENV, "FUNCTION_TARGET": "receive"})
    assert caught.value.variable == "P0_PUBLIC_KEYS"
    with pytest.raises(ConfigurationError) as unknown:
        build_target({**ENV, "FUNCTION_TARGET": "something-else"})
    assert unknown.value.variable == "FUNCTION_TARGET"


class _RacingPublisher(InMemoryPublisher):
    """Runs a whole second pass in the middle of this pass's first publish: the worst overlap
    (the other pass re-reads every record while this one has published but not marked it)."""

    def __init__(self) -> None:
        super().__init__()
        self.second_pass: Callable[[], None] = lambda: None
        self._raced = False

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        message_id = super().publish(data, attributes)
        if not self._raced:
            self._raced = True
            self.second_pass()
        return message_id


def test_two_overlapping_passes_publish_everything_and_each_record_at_most_twice() -> None:
    audit = InMemoryAuditLog()
    reader = InMemoryAuditReader(audit)
    waiting = [store(audit, body(f"obj-{i}"), age=timedelta(hours=1)) for i in range(6)]
    tallies: list[repair.RepairTally] = []

    def run(publisher: InMemoryPublisher) -> None:
        tallies.append(
            repair.redrive(
                reader, audit, publisher, received_before=NOW, clock=lambda: NOW, limit=None
            )
        )

    publisher = _RacingPublisher()
    publisher.second_pass = lambda: run(publisher)
    run(publisher)
    assert all(audit.records[e]["publishStatus"] == "published" for e in waiting)
    sent = [attributes["eventId"] for _, _, attributes in publisher.messages]
    assert set(sent) == set(waiting)
    assert max(sent.count(e) for e in waiting) == 2  # the race did happen, once
    assert all(sent.count(e) <= 2 for e in waiting)
    assert sum(t.published + t.unrecorded for t in tallies) == len(sent)
    assert sum(t.skipped for t in tallies) == len(waiting) - 1
