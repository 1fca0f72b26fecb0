"""`make run`'s command end to end: emulators, function, samples shown, everything stopped."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from p0_receiver.core.keys import parse_public_keys
from p0_receiver.core.tokens import TokenPolicy, TokenVerifier
from p0_receiver.entrypoints.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _listening(port: str) -> bool:
    """Whether any process still runs with ``--port=PORT`` on its command line."""
    needle = f"--port={port}".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes().split(b"\0"):
                return True
        except OSError:
            continue  # the process ended while we looked
    return False


def test_dev_up_shows_record_and_message_then_stops_everything(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "p0_receiver",
            "dev",
            "up",
            "--exit-after-samples",
            "--dir",
            str(tmp_path / "dev"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**_inherited_env(), "COLUMNS": "200"},
    )
    output = completed.stdout
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "preapproval-created: HTTP 200" in output
    assert "request-approved: HTTP 200" in output
    assert output.count("Firestore p0_notifications/") == 2
    assert output.count("Pub/Sub message pulled from") == 2
    assert '"publishStatus": "published"' in output
    # One request's story, sent approval first, for `audit timeline` to put back in order.
    story = [line.split() for line in output.splitlines() if " P0 time " in line]
    assert [row[0] for row in story] == ["request-approved", "request-created", "request-expired"]
    assert all(row[4:6] == ["HTTP", "200"] for row in story)
    (export,) = [line for line in output.splitlines() if line.startswith("export ")]
    pasted = dict(word.split("=", 1) for word in shlex.split(export)[1:])
    assert pasted["GOOGLE_CLOUD_PROJECT"] == "p0-receiver-local"
    assert set(pasted) == {
        "GOOGLE_CLOUD_PROJECT",
        "PUBSUB_TOPIC",
        "FIRESTORE_EMULATOR_HOST",
        "PUBSUB_EMULATOR_HOST",
        "P0_JWT_ISSUER",
        "P0_JWT_AUDIENCE",
        "P0_JWT_SUBJECT",
        "P0_PUBLIC_KEYS_FILE",
    }
    assert "-m p0_receiver audit query --since 1h" in output
    # After the story, and again among the lines to paste.
    timelines = [
        shlex.split(line)
        for line in output.splitlines()
        if line.endswith(f"audit timeline {story_id(output)}")
    ]
    assert [words[1:] for words in timelines] == [
        ["-m", "p0_receiver", "audit", "timeline", story_id(output)]
    ] * 2
    # It ends by writing the access review of the sample stories, and says where.
    report = tmp_path / "dev" / "access-review.html"
    assert f"access review written to {report.resolve()}" in output
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert 'data-rule="self-approval"' in page
    ports = re.findall(r"127\.0\.0\.1:(\d+)", output)
    assert len(set(ports)) >= 3  # function server and both emulators
    assert not any(_listening(port) for port in set(ports))  # no orphan JVM or server


def test_the_lines_dev_up_prints_work_when_pasted_into_a_shell(tmp_path: Path) -> None:
    """While `dev up` runs, every line it prints to paste works in a plain shell with none of
    the session's settings: doctor is green (the cloud-only checks skipped: emulator), the
    quarantine lists, the audit log answers, a sample is sent and the story's timeline reads."""
    process = subprocess.Popen(
        [sys.executable, "-m", "p0_receiver", "dev", "up", "--dir", str(tmp_path / "dev")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**_inherited_env(), "COLUMNS": "200"},
        start_new_session=True,
    )
    assert process.stdout is not None
    try:
        printed: list[str] = []
        for line in process.stdout:
            printed.append(line.rstrip("\n"))
            if line.startswith("From another terminal"):
                break
        pasted = [next(process.stdout).rstrip("\n") for _ in range(6)]
        export, *commands = pasted
        assert export.startswith("export ")
        outputs = [tmp_path / f"{n}.out" for n in range(len(commands))]
        script = "\n".join(
            ["set -e", export, *(f"{c} > {out}" for c, out in zip(commands, outputs, strict=True))]
        )
        clean_env = {
            k: v
            for k, v in _inherited_env().items()
            if not k.startswith(("P0_", "GOOGLE", "PUBSUB"))
        }
        bash = shutil.which("bash")
        assert bash is not None
        shell = subprocess.run(
            [bash, "-c", script], capture_output=True, text=True, timeout=180, check=False,
            env=clean_env,
        )  # fmt: skip
        assert shell.returncode == 0, shell.stderr[-2000:]
        ran = dict(zip((c.split(" p0_receiver ")[1] for c in commands), outputs, strict=True))
        doctor = ran["doctor"].read_text(encoding="utf-8")
        assert "✗" not in doctor
        assert "skipped: emulator" in doctor
        assert "nothing failed" in shell.stderr
        assert "the quarantine is empty" in shell.stderr
        assert "request-approved" in ran["audit query --since 1h"].read_text(encoding="utf-8")
        (timeline,) = [out for command, out in ran.items() if command.startswith("audit timeline")]
        assert "request-expired" in timeline.read_text(encoding="utf-8")
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
        process.stdout.close()


def story_id(output: str) -> str:
    (header,) = [line for line in output.splitlines() if line.startswith("sent the story of")]
    return header.split()[5].rstrip(",")


def _inherited_env() -> dict[str, str]:
    # Without the session's emulator variables: `dev up` must start and stop its own.
    return {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}


def test_keygen_then_token_verifies_with_the_written_public_key(tmp_path: Path) -> None:
    runner = CliRunner()
    keys = tmp_path / "keys"
    assert runner.invoke(main, ["dev", "keygen", "--dir", str(keys)]).exit_code == 0
    again = runner.invoke(main, ["dev", "keygen", "--dir", str(keys)])
    assert again.exit_code == 2  # refuses to overwrite without --force
    issued = runner.invoke(main, ["dev", "token", "--key-dir", str(keys), "--audience", "aud-1"])
    assert issued.exit_code == 0
    verifier = TokenVerifier(
        parse_public_keys((keys / "public.jwk.json").read_text()), TokenPolicy(audience="aud-1")
    )
    assert verifier.verify(f"Bearer {issued.output.strip()}").claims["aud"] == "aud-1"
