"""`audit export` time and peak memory for 10k and 50k records on the emulators.

Memory must not grow with the record count: the export streams page by page. Each size gets
its own project, filled with batched writes of records built by the receiver's own code; the
export then runs in fresh subprocesses (one for wall time and peak RSS, one under tracemalloc).

    python -m p0_receiver dev with-emulators -- python benchmarks/export_memory.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

SIZES = (10_000, 50_000)
BATCH = 500


def body(n: int, at: datetime) -> bytes:
    millis = int(at.timestamp() * 1000)
    return json.dumps(
        {
            "id": "p0-notifier",
            "name": "P0 notifier",
            "eventType": "request-approved" if n % 3 else "request-created",
            "data": {
                "id": f"REQ{n:08d}",
                "type": "gcloud",
                "access": "role",
                "status": "APPROVED",
                "requestor": f"user{n % 97}@corp.example",
                "principal": f"user{n % 97}@corp.example",
                "permission": {
                    "name": "roles/cloudsql.client on prod-db",
                    "description": "Cloud SQL Client on project prod-db",
                },
                "reason": f"Investigate incident INC-{n}",
                "requestedTimestamp": millis - 60_000,
                "lastUpdatedTimestamp": millis,
                "approvalDetails": {
                    "approvalSource": "slack",
                    "approvedTimestamp": millis,
                    "name": "John Smith",
                    "email": "john.smith@corp.example",
                },
            },
        },
        separators=(",", ":"),
    ).encode()


def fill(project: str, count: int) -> float:
    """Write ``count`` audit records with batched writes; return the seconds it took."""
    from google.cloud import firestore

    from p0_receiver.core.events import parse_notification
    from p0_receiver.core.record import build_audit_record
    from p0_receiver.core.tokens import VerifiedToken

    client = firestore.Client(project=project)
    collection = client.collection("p0_notifications")
    start = datetime(2024, 5, 1, tzinfo=UTC)
    began = time.perf_counter()
    batch = client.batch()
    for n in range(count):
        at = start + timedelta(seconds=n)
        token = VerifiedToken(
            header={"alg": "ES256", "kid": "p0-key-1", "typ": "JWT"},
            claims={"iss": "https://p0.example", "sub": "p0-notifier", "iat": 0, "exp": 300},
            fingerprint=f"{n:064x}",
            expires_at=at + timedelta(minutes=5),
            key_thumbprint="NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
            key_id="p0-key-1",
        )
        record = build_audit_record(
            parse_notification(body(n, at)), token, received_at=at, retention_days=400
        )
        batch.set(collection.document(record["eventId"]), dict(record))
        if (n + 1) % BATCH == 0:
            batch.commit()
            batch = client.batch()
    if count % BATCH:
        batch.commit()
    return time.perf_counter() - began


CHILD_TRACEMALLOC = """
import sys, tracemalloc
tracemalloc.start()
from p0_receiver.entrypoints.cli import main
try:
    main(["audit", "export", "--output", sys.argv[1]], standalone_mode=False)
finally:
    print(tracemalloc.get_traced_memory()[1])
"""


def export_run(project: str, target: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of `python -m p0_receiver audit export` in a child."""
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": project}
    command = [sys.executable, "-m", "p0_receiver", "audit", "export", "--output", target]
    began = time.perf_counter()
    child = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)  # noqa: S603
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export failed for {project}")
    return elapsed, usage.ru_maxrss


def traced_peak(project: str, target: str) -> int:
    """Peak Python heap (bytes, tracemalloc) during the export, imports included."""
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": project}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", CHILD_TRACEMALLOC, target],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip().splitlines()[-1])


def main() -> None:
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        raise SystemExit("run under the emulators: python -m p0_receiver dev with-emulators -- ...")
    print(f"{'records':>8} {'fill s':>8} {'export s':>9} {'rec/s':>8} {'peak RSS MiB':>13} "
          f"{'tracemalloc peak MiB':>21} {'file MiB':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        for count in SIZES:
            project = f"bench-export-{uuid.uuid4().hex[:8]}"
            filled = fill(project, count)
            target = os.path.join(scratch, f"{count}.jsonl")
            elapsed, rss_kib = export_run(project, target)
            lines = sum(1 for _ in open(target, encoding="utf-8"))  # noqa: SIM115
            if lines != count:
                raise SystemExit(f"exported {lines} records, expected {count}")
            peak = traced_peak(project, target)
            print(
                f"{count:>8} {filled:>8.1f} {elapsed:>9.1f} {count / elapsed:>8.0f} "
                f"{rss_kib / 1024:>13.1f} {peak / 2**20:>21.1f} "
                f"{os.path.getsize(target) / 2**20:>9.1f}"
            )


if __name__ == "__main__":
    main()
