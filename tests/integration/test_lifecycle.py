"""``dev send --lifecycle`` against a real functions-framework server on the emulators, then
``audit timeline`` tells the story in P0's order although it arrived in another."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from p0_receiver.devtools.simulator import save_keypair
from p0_receiver.devtools.stack import function_server
from p0_receiver.entrypoints.cli import main
from tests.conftest import Stack
from tests.integration.cli_world import cli, jsonl
from tests.support import AUDIENCE, ISSUER, SUBJECT, keypair

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def send_lifecycle(url: str, key_dir: Path) -> Result:
    return CliRunner().invoke(
        main,
        [
            "dev",
            "send",
            url,
            "--lifecycle",
            *("--key-dir", str(key_dir)),
            *("--issuer", ISSUER, "--audience", AUDIENCE, "--subject", SUBJECT),
        ],
    )


def test_the_story_arrives_out_of_order_and_the_timeline_restores_it(
    stack: Stack, tmp_path: Path
) -> None:
    save_keypair(keypair(), tmp_path / "keys")  # the key the function is configured with
    with function_server(stack.function_env()) as server:
        sent = send_lifecycle(server.url, tmp_path / "keys")
        # A key the function does not know: every delivery refused, and the command says so.
        refused = send_lifecycle(server.url, tmp_path / "other-keys")
    assert sent.exit_code == 0, sent.output
    lines = sent.stdout.splitlines()
    sent_rows = [line.split() for line in lines[1:4]]
    assert [row[0] for row in sent_rows] == [
        "request-approved",
        "request-created",
        "request-expired",
    ]
    assert all(row[4:6] == ["HTTP", "200"] for row in sent_rows)
    command = shlex.split(lines[-1])
    assert command[1:5] == ["-m", "p0_receiver", "audit", "timeline"]
    object_id = command[5]

    records = jsonl(cli(stack, "audit", "timeline", object_id, "--format", "jsonl"))
    assert [r["eventType"] for r in records] == [
        "request-created",
        "request-approved",
        "request-expired",
    ]
    assert [r["requestStatus"] for r in records] == ["PENDING_APPROVAL", "APPROVED", "EXPIRED"]
    occurred = [r["occurredAt"] for r in records]
    assert occurred == sorted(occurred)
    assert [r["occurredAt"] for r in records] == [
        row[3] for row in (sent_rows[1], sent_rows[0], sent_rows[2])
    ]
    # They reached the receiver approval first: arrival order is not the timeline's.
    arrived = {r["eventType"]: r["receivedAt"] for r in records}
    assert arrived["request-approved"] < arrived["request-created"] < arrived["request-expired"]
    assert {r["eventId"] for r in records} == {row[7] for row in sent_rows}
    assert {r["publishStatus"] for r in records} == {"published"}

    assert refused.exit_code == 1
    answers = [line.split()[4:6] for line in refused.stdout.splitlines() if "P0 time" in line]
    assert answers == [["HTTP", "401"]] * 3
