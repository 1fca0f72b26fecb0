"""The Cloud Storage emulator (PyPI ``gcp-storage-emulator``, pure Python), started and stopped
as one process group on a free loopback port, like the Firestore and Pub/Sub emulators."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from p0_receiver.devtools.emulators import LOOPBACK, READY_TIMEOUT_SECONDS, EmulatorError, free_port

ENV_VAR = "STORAGE_EMULATOR_HOST"


def _ready(url: str) -> bool:
    with (
        contextlib.suppress(OSError, urllib.error.URLError),
        urllib.request.urlopen(url, timeout=1) as answer,  # noqa: S310 (a loopback URL we built)
    ):
        return bool(answer.status == 200)
    return False


@contextlib.contextmanager
def running_storage_emulator(log_dir: Path | None = None) -> Iterator[dict[str, str]]:
    """Start the emulator (in memory), yield ``{"STORAGE_EMULATOR_HOST": url}``, stop it."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    logs = log_dir or Path(tempfile.mkdtemp(prefix="p0-emulators-"))
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "storage.log"
    command = [
        sys.executable,
        "-m",
        "gcp_storage_emulator",
        "start",
        f"--host={LOOPBACK}",
        f"--port={port}",
        "--in-memory",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped whole
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not _ready(f"{url}/"):
            if process.poll() is not None:
                raise EmulatorError(
                    f"storage emulator exited with {process.returncode}; see {log_path} "
                    "(is gcp-storage-emulator installed? requirements-dev.txt pins it)"
                )
            if time.monotonic() > deadline:
                raise EmulatorError(
                    f"storage emulator not ready after {READY_TIMEOUT_SECONDS:.0f} s"
                )
            time.sleep(0.2)
        yield {ENV_VAR: url}
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
