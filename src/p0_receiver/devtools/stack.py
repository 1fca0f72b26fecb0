"""The receiver on one machine: topic and subscription, a functions-framework server, readers.

Shared by ``make run`` and the end-to-end tests so both exercise exactly the same setup.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p0_receiver.devtools.emulators import LOOPBACK, free_port

LOCAL_PROJECT = "p0-receiver-local"
LOCAL_TOPIC = "p0-notifications"
LOCAL_SUBSCRIPTION = "p0-notifications-local"
SERVER_READY_TIMEOUT_SECONDS = 30.0


def source_root() -> Path:
    """The checkout holding ``main.py`` (the directory a deploy uploads)."""
    return Path(__file__).resolve().parents[3]


def ensure_topic_and_subscription(project: str, topic: str, subscription: str) -> None:
    import google.cloud.pubsub_v1 as pubsub_v1  # noqa: PLR0402 (mypy: untyped namespace)
    from google.api_core import exceptions

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(project, topic)
    with contextlib.suppress(exceptions.AlreadyExists):
        publisher.create_topic(name=topic_path)
    with contextlib.suppress(exceptions.AlreadyExists):
        subscriber.create_subscription(
            name=subscriber.subscription_path(project, subscription), topic=topic_path
        )
    subscriber.close()


def warm_firestore(project: str, *, rounds: int = 20) -> None:
    """Exercise a freshly started Firestore emulator until its JIT answers at normal speed.

    A cold emulator JVM can take seconds over its first writes, longer than the receiver's
    Firestore budget: the first delivery of a local run or a test would read as an outage.
    """
    from google.cloud import firestore

    document = firestore.Client(project=project).collection("warm-up").document("probe")
    for round_number in range(rounds):
        document.set({"round": round_number}, timeout=60)
        document.get(timeout=60)
    document.delete(timeout=60)


@dataclass(frozen=True)
class PulledMessage:
    message_id: str
    data: bytes
    attributes: dict[str, str]


def pull_messages(
    project: str, subscription: str, *, max_messages: int = 10
) -> list[PulledMessage]:
    """Pull and acknowledge whatever is waiting now (never blocks on an empty queue)."""
    import google.cloud.pubsub_v1 as pubsub_v1  # noqa: PLR0402 (mypy: untyped namespace)

    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, subscription)
    try:
        with warnings.catch_warnings():
            # Deprecated for production, but the emulator honours it, and without it a pull on
            # an empty queue blocks until its deadline: "nothing was published" would cost 10 s.
            warnings.simplefilter("ignore", DeprecationWarning)
            response = subscriber.pull(
                request={
                    "subscription": path,
                    "max_messages": max_messages,
                    "return_immediately": True,
                },
                timeout=10,
            )
        received = response.received_messages
        if received:
            subscriber.acknowledge(
                request={"subscription": path, "ack_ids": [item.ack_id for item in received]}
            )
        return [
            PulledMessage(
                item.message.message_id, bytes(item.message.data), dict(item.message.attributes)
            )
            for item in received
        ]
    finally:
        subscriber.close()


def read_record(
    project: str, database: str, collection: str, event_id: str
) -> dict[str, Any] | None:
    from google.cloud import firestore

    client = firestore.Client(project=project, database=database)
    return client.collection(collection).document(event_id).get().to_dict()


@dataclass
class FunctionServer:
    url: str
    process: subprocess.Popen[bytes]


def _wait_serving(server: FunctionServer, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"functions-framework exited with {server.process.returncode}")
        try:
            with urllib.request.urlopen(server.url, timeout=1):  # noqa: S310 (loopback only)
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer (405 for GET) means it is serving
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("functions-framework did not start serving in time")


@contextlib.contextmanager
def function_server(
    env: Mapping[str, str],
    *,
    source_dir: Path | None = None,
    python: str = sys.executable,
    stdout: int | None = None,
    target: str = "receive",
) -> Iterator[FunctionServer]:
    """Serve ``main.py``'s ``target`` (``receive`` or ``redrive``) with the real
    functions-framework (gunicorn) on loopback."""
    directory = source_dir or source_root()
    port = free_port()
    process = subprocess.Popen(
        [
            python,
            "-m",
            "functions_framework",
            f"--target={target}",
            "--source=main.py",
            f"--host={LOOPBACK}",
            f"--port={port}",
        ],
        cwd=directory,
        env={**os.environ, **env},
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = FunctionServer(f"http://{LOOPBACK}:{port}/", process)
    try:
        _wait_serving(server, time.monotonic() + SERVER_READY_TIMEOUT_SECONDS)
        yield server
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
