"""The local emulators: Firestore and Pub/Sub from the Google Cloud CLI, started as plain
JVMs, and Cloud Storage (PyPI ``gcp-storage-emulator``, pure Python, for the archive).

The jars are started directly (not through the ``gcloud`` wrapper, which leaves its JVM
running when killed); every emulator runs in its own process group on a free loopback port and
is stopped by killing that group. Used by ``make run``, ``make test`` and the test fixtures.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT_SECONDS = 60.0
LOOPBACK = "127.0.0.1"
SERVICES = ("firestore", "pubsub", "storage")
ENV_VARS = {
    "firestore": "FIRESTORE_EMULATOR_HOST",
    "pubsub": "PUBSUB_EMULATOR_HOST",
    "storage": "STORAGE_EMULATOR_HOST",
}


class EmulatorError(RuntimeError):
    """An emulator could not be found or did not become ready."""


def sdk_root() -> Path:
    """The Google Cloud CLI's installation root (``CLOUDSDK_ROOT`` overrides the lookup)."""
    configured = os.environ.get("CLOUDSDK_ROOT")
    if configured:
        return Path(configured)
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise EmulatorError(
            "gcloud is not on PATH: install the Google Cloud CLI with its Firestore and "
            "Pub/Sub emulator components (or set CLOUDSDK_ROOT)"
        )
    completed = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
        timeout=60,
    )
    return Path(completed.stdout.strip())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@dataclass
class Emulator:
    name: str
    env_var: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def env_value(self) -> str:
        # google-cloud-storage wants a URL; the Firestore and Pub/Sub clients want host:port.
        return f"http://{self.host}" if self.name == "storage" else self.host


def _storage_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gcp_storage_emulator",
        "start",
        f"--host={LOOPBACK}",
        f"--port={port}",
        "--in-memory",
    ]


def _commands(root: Path, firestore_port: int, pubsub_port: int) -> dict[str, list[str]]:
    java = shutil.which("java")
    if java is None:
        raise EmulatorError("java is not on PATH: the emulators need Java 17 or newer")
    firestore_jar = root / "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
    pubsub_jars = sorted(
        glob.glob(str(root / "platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar"))
    )
    if not firestore_jar.is_file():
        raise EmulatorError(
            f"Firestore emulator jar missing under {root}: install the "
            "cloud-firestore-emulator component"
        )
    if not pubsub_jars:
        raise EmulatorError(
            f"Pub/Sub emulator jar missing under {root}: install the pubsub-emulator component"
        )
    return {
        "firestore": [
            java,
            "-Duser.language=en",
            "-cp",
            str(firestore_jar),
            "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
            "start",
            f"--host={LOOPBACK}",
            f"--port={firestore_port}",
        ],
        "pubsub": [java, "-jar", pubsub_jars[-1], f"--host={LOOPBACK}", f"--port={pubsub_port}"],
    }


def _wait_ready(emulator: Emulator, deadline: float) -> None:
    url = f"http://{emulator.host}/"
    while time.monotonic() < deadline:
        if emulator.process.poll() is not None:
            raise EmulatorError(
                f"{emulator.name} emulator exited with {emulator.process.returncode}; "
                f"see {emulator.log_path}"
            )
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=1) as answer,
        ):
            # "Ok" from the JVMs, "OK" from the storage emulator.
            if answer.read().strip().lower() == b"ok":
                return
        time.sleep(0.2)
    raise EmulatorError(f"{emulator.name} emulator not ready after {READY_TIMEOUT_SECONDS:.0f} s")


def _stop(emulator: Emulator) -> None:
    if emulator.process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(emulator.process.pid, signal.SIGTERM)
    try:
        emulator.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(emulator.process.pid, signal.SIGKILL)
        emulator.process.wait(timeout=10)


@contextlib.contextmanager
def running_emulators(
    log_dir: Path | None = None,
    *,
    services: Collection[str] = SERVICES,
    ports: Mapping[str, int] | None = None,
) -> Iterator[dict[str, str]]:
    """Start the emulators, yield the environment that points clients at them, stop them.

    Ports default to free loopback ports; ``ports`` pins some (a test that must bring a
    service back at an address a client already knows).
    """
    chosen = {name: (ports or {}).get(name) or free_port() for name in SERVICES}
    commands: dict[str, list[str]] = {}
    if {"firestore", "pubsub"} & set(services):
        commands.update(_commands(sdk_root(), chosen["firestore"], chosen["pubsub"]))
    commands["storage"] = _storage_command(chosen["storage"])
    commands = {name: command for name, command in commands.items() if name in services}
    logs = log_dir or Path(tempfile.mkdtemp(prefix="p0-emulators-"))
    logs.mkdir(parents=True, exist_ok=True)
    started: list[Emulator] = []
    try:
        for name, command in commands.items():
            log_path = logs / f"{name}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group: killed whole, no orphan JVM
                )
            started.append(Emulator(name, ENV_VARS[name], chosen[name], process, log_path))
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        for emulator in started:
            _wait_ready(emulator, deadline)
        yield {emulator.env_var: emulator.env_value for emulator in started}
    finally:
        for emulator in started:
            _stop(emulator)
