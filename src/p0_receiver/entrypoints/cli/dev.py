"""``p0-receiver dev``: a P0 simulator and the whole stack on this machine (emulators included)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.json import JSON
from rich.panel import Panel

from p0_receiver.core.record import rfc3339
from p0_receiver.devtools import samples, simulator
from p0_receiver.devtools.emulators import EmulatorError, running_emulators

DEFAULT_DEV_DIR = Path(".dev")
_out = Console()
_err = Console(stderr=True)


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops its process. SIGINT is set
    # explicitly because a shell starting us in the background leaves it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_interrupt)


@click.group()
def dev() -> None:
    """Local development: dev keypair, signed deliveries, emulators, the full local stack."""


@dev.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=DEFAULT_DEV_DIR / "keys",
    show_default=True,
    help="Where to write private.pem, public.pem, public.jwk.json.",
)
@click.option(
    "--algorithm",
    type=click.Choice(simulator.SUPPORTED_ALGORITHMS),
    default="ES256",
    show_default=True,
)
@click.option("--force", is_flag=True, help="Replace an existing keypair.")
def keygen(directory: Path, algorithm: str, force: bool) -> None:
    """Generate a dev keypair standing in for the one P0 creates at integration setup."""
    if (directory / "key.json").exists() and not force:
        raise click.UsageError(
            f"a keypair already exists in {directory}; pass --force to replace it"
        )
    simulator.save_keypair(simulator.generate_keypair(algorithm), directory)
    _err.print(f"wrote {directory}/private.pem, public.pem, public.jwk.json ({algorithm})")
    click.echo((directory / "public.pem").read_text(), nl=False)


def _token_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--key-dir",
                type=click.Path(path_type=Path),
                default=DEFAULT_DEV_DIR / "keys",
                show_default=True,
                help="Dev keypair directory (created if missing).",
            ),
            click.option("--issuer", default=simulator.DEV_ISSUER, show_default=True),
            click.option("--audience", default=simulator.DEV_AUDIENCE, show_default=True),
            click.option("--subject", default=simulator.DEV_SUBJECT, show_default=True),
            click.option(
                "--lifetime",
                type=click.IntRange(1, 86_400),
                default=300,
                show_default=True,
                help="Token lifetime in seconds.",
            ),
        ]
    ):
        command = option(command)
    return command


def _signed_token(key_dir: Path, issuer: str, audience: str, subject: str, lifetime: int) -> str:
    return simulator.sign_token(
        simulator.load_or_create_keypair(key_dir),
        now=_now(),
        issuer=issuer,
        audience=audience,
        subject=subject,
        lifetime=timedelta(seconds=lifetime),
    )


@dev.command()
@_token_options
def token(key_dir: Path, issuer: str, audience: str, subject: str, lifetime: int) -> None:
    """Print a bearer token signed with the dev key, as P0 would send it."""
    click.echo(_signed_token(key_dir, issuer, audience, subject, lifetime))


@dev.command()
@click.argument("url")
@click.option(
    "--sample",
    type=click.Choice(sorted(samples.SAMPLES)),
    default="preapproval-created",
    show_default=True,
    help="Which built-in delivery to send.",
)
@click.option(
    "--file",
    "body_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Send this file's bytes instead of a sample.",
)
@click.option(
    "--lifecycle",
    is_flag=True,
    help="Send one new request's story instead: created, approved, expired (approval first).",
)
@_token_options
def send(
    url: str,
    sample: str,
    body_file: Path | None,
    lifecycle: bool,
    key_dir: Path,
    issuer: str,
    audience: str,
    subject: str,
    lifetime: int,
) -> None:
    """Sign a token and POST a delivery to URL the way P0 does; print the answer.

    With --lifecycle, three deliveries about one new P0 request, each with its own token, in
    an arrival order that differs from P0's; then the command that shows them in P0's order.
    """
    if lifecycle:
        sample_given = (
            click.get_current_context().get_parameter_source("sample")
            is not ParameterSource.DEFAULT
        )
        if body_file or sample_given:
            raise click.UsageError("--lifecycle sends its own deliveries: drop --sample/--file")

        def sign() -> str:
            return _signed_token(key_dir, issuer, audience, subject, lifetime)

        try:
            sent = send_lifecycle(url, sign)
        except OSError as failure:
            raise click.ClickException(f"cannot reach {url}: {failure}") from failure
        for line in lifecycle_lines(sent):
            click.echo(line)
        if not sent.accepted:
            sys.exit(1)
        return
    body = body_file.read_bytes() if body_file else samples.SAMPLES[sample]
    token_text = _signed_token(key_dir, issuer, audience, subject, lifetime)
    try:
        answer = simulator.post_delivery(url, body, token=token_text)
    except OSError as failure:
        raise click.ClickException(f"cannot reach {url}: {failure}") from failure
    _err.print(f"HTTP {answer.status}")
    click.echo(answer.body.decode("utf-8", "replace"))
    if answer.status != 200:
        sys.exit(1)


@dev.command("with-emulators", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def with_emulators(command: tuple[str, ...]) -> None:
    """Start the emulators, run COMMAND with FIRESTORE/PUBSUB/STORAGE_EMULATOR_HOST set, stop
    them."""
    _stop_on_signals()
    try:
        with running_emulators() as emulator_env:
            _err.print(f"emulators ready: {emulator_env}")
            completed = subprocess.run(
                list(command), env={**os.environ, **emulator_env}, check=False
            )
    except EmulatorError as problem:
        raise click.ClickException(str(problem)) from problem
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(completed.returncode)


@dev.command()
@click.option(
    "--dir",
    "dev_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_DEV_DIR,
    show_default=True,
    help="Dev keypair and logs.",
)
@click.option("--exit-after-samples", is_flag=True, help="Stop after showing the samples.")
def up(dev_dir: Path, exit_after_samples: bool) -> None:
    """Run everything locally: emulators, the function, two signed sample deliveries, and one
    request's story (created, approved, expired) for `audit timeline`."""
    from p0_receiver.devtools import stack

    _stop_on_signals()
    keypair = simulator.load_or_create_keypair(dev_dir / "keys")
    try:
        with running_emulators(dev_dir / "logs", services=("firestore", "pubsub")) as emulator_env:
            os.environ.update(emulator_env)  # this process reads the record and pulls messages
            env = {
                **emulator_env,
                "GOOGLE_CLOUD_PROJECT": stack.LOCAL_PROJECT,
                "PUBSUB_TOPIC": stack.LOCAL_TOPIC,
                "P0_PUBLIC_KEYS": keypair.public_pem.decode("ascii"),
                "P0_JWT_ISSUER": simulator.DEV_ISSUER,
                "P0_JWT_AUDIENCE": simulator.DEV_AUDIENCE,
                "P0_JWT_SUBJECT": simulator.DEV_SUBJECT,
            }
            stack.ensure_topic_and_subscription(
                stack.LOCAL_PROJECT, stack.LOCAL_TOPIC, stack.LOCAL_SUBSCRIPTION
            )
            stack.warm_firestore(stack.LOCAL_PROJECT)
            log_path = dev_dir / "logs" / "function.log"
            with (
                log_path.open("ab") as function_log,
                stack.function_server(env, stdout=function_log.fileno()) as server,
            ):
                _show_samples(stack, server.url, keypair)
                story = _show_lifecycle(server.url, keypair)
                report = _show_access_review(server.url, keypair, env, dev_dir)
                _out.print(
                    Panel.fit(
                        f"Webhook: [bold]{server.url}[/]   (function log: {log_path})\n"
                        f"Access review: [bold]{report}[/]\n"
                        "Ctrl-C stops the function and both emulators.",
                        title="running",
                    )
                )
                _out.print("From another terminal (paste these lines):", style="bold")
                # doctor reads the function's own settings: the key as the keypair's file, not
                # a PEM to paste.
                operator_env = {name: env[name] for name in CLI_ENVIRONMENT if name in env}
                operator_env["P0_PUBLIC_KEYS_FILE"] = str(
                    (dev_dir / "keys" / "public.pem").resolve()
                )
                for line in shell_lines(
                    operator_env,
                    server.url,
                    key_dir=dev_dir / "keys",
                    story_object_id=story.object_id,
                ):
                    _out.print(line, markup=False, highlight=False, soft_wrap=True)
                while not exit_after_samples:
                    time.sleep(3600)
    except EmulatorError as problem:
        raise click.ClickException(str(problem)) from problem
    except KeyboardInterrupt:
        _err.print("stopped: function server and emulators shut down")


# What the operator CLI needs to reach the local stack (the project, the topic, the emulators),
# and what doctor checks of the function's settings (the pinned claims; the key file is added).
CLI_ENVIRONMENT = (
    "GOOGLE_CLOUD_PROJECT",
    "PUBSUB_TOPIC",
    "FIRESTORE_EMULATOR_HOST",
    "PUBSUB_EMULATOR_HOST",
    "P0_JWT_ISSUER",
    "P0_JWT_AUDIENCE",
    "P0_JWT_SUBJECT",
)


def _cli() -> str:
    """This CLI as a shell command: the interpreter running it, so the venv needs no activation."""
    return f"{shlex.quote(os.path.relpath(sys.executable))} -m p0_receiver"


def shell_lines(
    environment: Mapping[str, str],
    url: str,
    *,
    key_dir: Path = DEFAULT_DEV_DIR / "keys",
    story_object_id: str | None = None,
) -> list[str]:
    """Shell lines that point the operator CLI at the running stack and try it once."""
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in environment.items())
    signing_key = (
        "" if key_dir == DEFAULT_DEV_DIR / "keys" else f" --key-dir {shlex.quote(str(key_dir))}"
    )
    lines = [
        f"export {exports}",
        f"{_cli()} audit query --since 1h",
        f"{_cli()} doctor",
        f"{_cli()} quarantine list",
        f"{_cli()} dev send {shlex.quote(url)} --sample request-approved{signing_key}",
    ]
    if story_object_id is not None:
        lines.append(timeline_command(story_object_id))
    return lines


def timeline_command(object_id: str) -> str:
    return f"{_cli()} audit timeline {shlex.quote(object_id)}"


@dataclass(frozen=True)
class SentStory:
    """A request's story as sent: each delivery with the receiver's answer, in arrival order."""

    object_id: str
    deliveries: tuple[tuple[samples.StoryDelivery, simulator.DeliveryResponse], ...]

    @property
    def accepted(self) -> bool:
        return all(answer.status == 200 for _, answer in self.deliveries)


def send_lifecycle(url: str, sign: Callable[[], str]) -> SentStory:
    """POST one new request's created/approved/expired deliveries, a fresh token for each."""
    object_id = samples.new_object_id()
    story = samples.request_lifecycle(object_id, now=_now())
    answers = tuple(
        (delivery, simulator.post_delivery(url, delivery.body, token=sign())) for delivery in story
    )
    return SentStory(object_id, answers)


def _event_id(answer: simulator.DeliveryResponse) -> str:
    try:
        event_id = answer.json().get("eventId")
    except (ValueError, AttributeError):
        return "-"
    return event_id if isinstance(event_id, str) else "-"


def lifecycle_lines(sent: SentStory) -> list[str]:
    """What was sent (arrival order, P0 time, answer, event id) and the command to read it."""
    lines = [f"sent the story of request {sent.object_id}, in this arrival order:"]
    for delivery, answer in sent.deliveries:
        lines.append(
            f"  {delivery.event_type:<17} P0 time {rfc3339(delivery.occurred_at)}  "
            f"HTTP {answer.status}  eventId {_event_id(answer)}"
        )
        if answer.status != 200:
            lines.append("    " + answer.body.decode("utf-8", "replace"))
    lines.append("its timeline, in P0's time order (with the operator CLI's environment set):")
    lines.append("  " + timeline_command(sent.object_id))
    return lines


def _show_lifecycle(url: str, keypair: simulator.DevKeypair) -> SentStory:
    # Sent after the samples' messages were pulled: the story's three stay on the subscription.
    sent = send_lifecycle(url, lambda: simulator.sign_token(keypair, now=_now()))
    _out.rule("[bold]one request's story[/], out of order")
    for line in lifecycle_lines(sent):
        _out.print(line, markup=False, highlight=False, soft_wrap=True)
    if not sent.accepted:
        raise click.ClickException("the request's story was not accepted")
    return sent


def _show_access_review(
    url: str, keypair: simulator.DevKeypair, env: Mapping[str, str], dev_dir: Path
) -> Path:
    """Send the review stories (one per finding, hostile text), then write the access review
    of their week up to today with the operator CLI, as a user would."""
    from p0_receiver.devtools.review_stories import review_week, send_review_stories

    now = _now()
    sent = send_review_stories(url, lambda: simulator.sign_token(keypair, now=_now()), now=now)
    _out.rule("[bold]access review[/]: a week of requests, one per finding")
    if not sent.accepted:
        raise click.ClickException(f"the review stories were not all accepted: {sent.statuses}")
    start, _ = review_week(now)
    report = (dev_dir / "access-review.html").resolve()
    command = [
        *(sys.executable, "-m", "p0_receiver", "report", "access-review"),
        *("--from", start.date().isoformat(), "--to", now.date().isoformat()),
        *("--out", str(report), "--force"),
    ]
    cli_env = {name: env[name] for name in CLI_ENVIRONMENT if name in env}
    completed = subprocess.run(command, env={**os.environ, **cli_env}, check=False)
    if completed.returncode != 0:
        raise click.ClickException("the access review could not be written")
    _out.print(f"access review written to {report}", markup=False, highlight=False)
    return report


def _show_samples(stack: Any, url: str, keypair: simulator.DevKeypair) -> None:
    from p0_receiver.entrypoints.cli.output import record_for_display

    for name, body in samples.SAMPLES.items():
        answer = simulator.post_delivery(url, body, token=simulator.sign_token(keypair, now=_now()))
        _out.rule(f"[bold]{name}[/]: HTTP {answer.status}")
        _out.print(JSON(answer.body.decode("utf-8", "replace")))
        if answer.status != 200:
            raise click.ClickException(f"the sample {name} was not accepted")
        event_id = answer.json()["eventId"]
        record = stack.read_record(stack.LOCAL_PROJECT, "(default)", "p0_notifications", event_id)
        _out.print(
            Panel(
                JSON(json.dumps(record_for_display(record or {}))),
                title=f"Firestore p0_notifications/{event_id[:16]}…",
            )
        )
    time.sleep(0.2)
    for message in stack.pull_messages(stack.LOCAL_PROJECT, stack.LOCAL_SUBSCRIPTION):
        _out.print(
            Panel(
                JSON(
                    json.dumps(
                        {
                            "messageId": message.message_id,
                            "attributes": message.attributes,
                            "data": message.data.decode("utf-8", "replace"),
                        }
                    )
                ),
                title=f"Pub/Sub message pulled from {stack.LOCAL_SUBSCRIPTION}",
            )
        )
