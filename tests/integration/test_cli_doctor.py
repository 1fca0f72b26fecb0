"""``p0-receiver doctor`` on the emulators: what they can answer is checked for real, what they
lack (admin API, IAM, Secret Manager) is reported as skipped, never as passed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import Result

from tests.conftest import Stack
from tests.integration.cli_world import cli

pytestmark = pytest.mark.integration


def doctor(stack: Stack, *args: str, **env: str) -> Result:
    return cli(stack, "doctor", "--format", "json", *args, env=stack.function_env(**env))


def lines(result: Result) -> dict[str, dict[str, Any]]:
    return {line["check"]: line for line in json.loads(result.stdout)}


def test_a_stack_on_the_emulators_passes_what_the_emulators_can_answer(stack: Stack) -> None:
    result = doctor(stack)
    assert result.exit_code == 0, result.output
    found = lines(result)
    assert {name: line["status"] for name, line in found.items()} == {
        "settings": "ok",
        "key-1": "ok",
        "issuer-pinned": "ok",
        "audience-pinned": "ok",
        "firestore": "ok",
        "audit-ttl": "skip",
        "ledger-ttl": "skip",
        "quarantine-ttl": "skip",
        "quarantine-bound-ttl": "skip",
        "audit-indexes": "skip",
        "topic": "ok",
        "runtime-may-publish": "skip",
        "key-secret": "skip",
    }
    assert found["audit-indexes"]["detail"].startswith("skipped: emulator")
    assert found["runtime-may-publish"]["detail"].startswith("skipped: emulator")
    assert found["topic"]["detail"] == f"projects/{stack.project}/topics/{stack.topic} exists"
    assert "nothing failed" in result.stderr


def test_a_missing_topic_fails_and_exits_1(stack: Stack) -> None:
    result = doctor(stack, PUBSUB_TOPIC="never-created")
    assert result.exit_code == 1
    found = lines(result)
    assert found["topic"]["status"] == "fail"
    assert (
        found["topic"]["detail"] == f"projects/{stack.project}/topics/never-created does not exist"
    )
    assert "PUBSUB_TOPIC" in found["topic"]["fix"]
    assert "failed" in result.stderr


def test_a_key_that_is_not_a_public_key_fails_and_exits_1(stack: Stack) -> None:
    result = doctor(
        stack, P0_PUBLIC_KEYS="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
    )
    assert result.exit_code == 1
    found = lines(result)
    assert found["keys"]["status"] == "fail"
    assert found["keys"]["facts"] == {"variable": "P0_PUBLIC_KEYS"}
    assert found["firestore"]["status"] == "ok"  # the rest of the list still ran


def test_invalid_settings_fail_and_exit_1(stack: Stack) -> None:
    result = doctor(stack, MAX_BODY_BYTES="10")
    assert result.exit_code == 1
    found = lines(result)
    assert found["settings"]["status"] == "fail"
    assert found["settings"]["facts"] == {"variable": "MAX_BODY_BYTES"}
    assert found["keys"]["status"] == "skip"
    assert found["topic"]["status"] == "ok"


def test_the_table_is_a_checklist(stack: Stack) -> None:
    result = cli(stack, "doctor", env=stack.function_env(P0_JWT_AUDIENCE=""))
    assert result.exit_code == 0, result.output
    assert "✓ ok" in result.stdout
    assert "! warn" in result.stdout
    assert "- skip" in result.stdout
    assert "✗" not in result.stdout


def test_an_unreachable_firestore_fails_within_its_budget(stack: Stack) -> None:
    # Nothing listens on port 1: the client gives up after FIRESTORE_TIMEOUT_SECONDS.
    nowhere = {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"}
    result = cli(
        stack,
        "doctor",
        "--format",
        "json",
        env=stack.function_env(FIRESTORE_TIMEOUT_SECONDS="1", **nowhere),
        process_env=nowhere,
    )
    assert result.exit_code == 1
    found = lines(result)
    assert found["firestore"]["status"] == "fail"
    assert found["firestore"]["detail"].startswith("Firestore failed:")
    assert found["topic"]["status"] == "ok"
