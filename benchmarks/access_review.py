"""How long `p0-receiver report access-review` takes, and how much memory it holds, as the
period grows: 10k and 100k audit records on the Firestore emulator.

Seeds the records directly (the review stories of the dev tools, each under its own object
id, spread over one week), then runs the real command in a fresh process per format and size
and prints wall time, records per second and the process's peak resident memory. Memory
should stay nearly flat from 10k to 100k records: the report streams the period.
Run with the emulators up:  make bench-report  (RECORD_COUNTS=10000 for one size,
REPORT_FORMATS=html for one format)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from google.cloud import firestore

from p0_receiver.core.events import parse_notification
from p0_receiver.core.record import build_audit_record, recorded_token
from p0_receiver.devtools.review_stories import review_stories, review_week

BATCH = 500  # Firestore's most writes in one commit
TOKEN = recorded_token({"alg": "ES256", "typ": "JWT"}, {"sub": "bench"}, "0" * 64)


def seed(client: firestore.Client, collection: str, count: int, now: datetime) -> None:
    """``count`` audit records: whole stories, each under a new object id."""
    stories = review_stories(now)
    batch, pending, written, story = client.batch(), 0, 0, 0
    while written < count:
        template = stories[story % len(stories)]
        story += 1
        for delivery in template.deliveries(f"bench-{story}"):
            notification = parse_notification(delivery.body)
            record = build_audit_record(
                notification, TOKEN, received_at=delivery.occurred_at, retention_days=30
            )
            batch.create(
                client.collection(collection).document(notification.event_id), dict(record)
            )
            pending += 1
            written += 1
            if pending == BATCH:
                batch.commit()
                batch, pending = client.batch(), 0
    if pending:
        batch.commit()


def run_report(
    environ: dict[str, str], start: datetime, end: datetime, fmt: str
) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one report run in a fresh process."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / f"review.{fmt}"
        errors = Path(scratch) / "stderr"
        began = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603 (our own CLI, fixed arguments)
            [sys.executable, "-m", "p0_receiver", "report", "access-review",
             "--from", start.isoformat(), "--to", end.isoformat(),
             "--format", fmt, "--out", str(out)],
            env=environ, stdout=subprocess.DEVNULL, stderr=errors.open("wb"),
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            said = errors.read_text(errors="replace").strip().splitlines()[-5:]
            raise SystemExit(f"the report failed ({fmt}, exit {process.returncode}): {said}")
        return time.perf_counter() - began, usage.ru_maxrss / 1024


def main() -> None:
    counts = [int(n) for n in os.environ.get("RECORD_COUNTS", "10000,100000").split(",")]
    formats = os.environ.get("REPORT_FORMATS", "html,csv").split(",")
    project = f"bench-report-{uuid.uuid4().hex[:8]}"
    now = datetime.now(tz=UTC)
    start, end = review_week(now)
    client = firestore.Client(project=project)
    print(f"access review over the emulator, {os.cpu_count()} cores")
    print(f"{'records':>8} {'format':>6} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>12}")
    for count in sorted(counts):
        collection = f"audit_{count}"
        seed(client, collection, count, now)
        environ = {
            **os.environ,
            "GOOGLE_CLOUD_PROJECT": project,
            "FIRESTORE_COLLECTION": collection,
            # The emulator has no indexes: it scans the whole collection for every page of the
            # period's query (Firestore serves it from the composite index), which at 100k
            # records takes longer than the default 4 s budget per call.
            "FIRESTORE_TIMEOUT_SECONDS": "10",
        }
        for fmt in formats:
            seconds, peak = run_report(environ, start, end, fmt)
            print(f"{count:>8} {fmt:>6} {seconds:>8.1f} {count / seconds:>10.0f} {peak:>12.0f}")


if __name__ == "__main__":
    main()
