"""Fixtures for the emulator-backed tiers: emulators (reused or started), an isolated stack."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from p0_receiver.devtools import stack as local_stack
from p0_receiver.devtools.emulators import running_emulators
from tests.support import AUDIENCE, ISSUER, SUBJECT, keypair

EMULATOR_VARS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")


def _warm_up() -> None:
    # A cold emulator JVM answers its first calls in seconds; tests with tight timeouts
    # must measure the receiver, not the JIT.
    project = f"warm-up-{uuid.uuid4().hex[:8]}"
    local_stack.warm_firestore(project)
    local_stack.ensure_topic_and_subscription(project, "warm", "warm")


@pytest.fixture(scope="session")
def emulators() -> Iterator[dict[str, str]]:
    """The emulators `make test` started, or a pair started for this pytest session."""
    if all(os.environ.get(name) for name in EMULATOR_VARS):
        _warm_up()
        yield {name: os.environ[name] for name in EMULATOR_VARS}
        return
    with running_emulators() as env, pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        _warm_up()
        yield env


@dataclass
class Stack:
    """One isolated world on the shared emulators: a project of its own per test."""

    project: str
    emulator_env: dict[str, str]
    topic: str = "p0-notifications"
    subscription: str = "p0-notifications-test"
    collection: str = "p0_notifications"
    token_collection: str = "p0_token_fingerprints"
    quarantine_collection: str = "p0_quarantine"
    overrides: dict[str, str] = field(default_factory=dict)

    def function_env(self, **overrides: str) -> dict[str, str]:
        """The environment a deploy would give the function, pointed at the emulators."""
        return {
            **self.emulator_env,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PUBSUB_TOPIC": self.topic,
            "P0_PUBLIC_KEYS": keypair().public_pem.decode(),
            "P0_JWT_ISSUER": ISSUER,
            "P0_JWT_AUDIENCE": AUDIENCE,
            "P0_JWT_SUBJECT": SUBJECT,
            **overrides,
        }

    def create_topic(self) -> None:
        local_stack.ensure_topic_and_subscription(self.project, self.topic, self.subscription)

    def _firestore(self) -> Any:
        from google.cloud import firestore

        return firestore.Client(project=self.project)

    def record(self, event_id: str) -> dict[str, Any] | None:
        return local_stack.read_record(self.project, "(default)", self.collection, event_id)

    def records(self) -> list[dict[str, Any]]:
        return [doc.to_dict() for doc in self._firestore().collection(self.collection).stream()]

    def ledger_entries(self) -> list[dict[str, Any]]:
        collection = self._firestore().collection(self.token_collection)
        return [doc.to_dict() for doc in collection.stream()]

    def firestore_collection(self, name: str) -> Any:
        return self._firestore().collection(name)

    def quarantined(self) -> list[dict[str, Any]]:
        collection = self._firestore().collection(self.quarantine_collection)
        return [doc.to_dict() for doc in collection.stream()]

    def messages(self) -> list[local_stack.PulledMessage]:
        return local_stack.pull_messages(self.project, self.subscription, max_messages=100)

    def nothing_written(self) -> bool:
        return not (self.records() or self.ledger_entries() or self.messages())


@pytest.fixture
def stack(emulators: dict[str, str]) -> Stack:
    world = Stack(project=f"test-{uuid.uuid4().hex[:12]}", emulator_env=emulators)
    world.create_topic()
    return world
