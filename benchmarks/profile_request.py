"""Where an accepted delivery's time goes: a CPU profile of the request path, clients warm.

Drives main.py in-process through functions-framework's test client against the emulators:
warms up, then profiles N accepted deliveries with cProfile and prints wall time per request,
CPU time per request, and the functions with the most cumulative time.
Run with the emulators up:  python -m p0_receiver dev with-emulators -- \
    python benchmarks/profile_request.py [--requests N] [--top K]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import flask
import functions_framework

from p0_receiver.devtools import simulator
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.devtools.stack import ensure_topic_and_subscription

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warm-up", type=int, default=400)
    parser.add_argument("--top", type=int, default=30)
    arguments = parser.parse_args()
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        raise SystemExit("start the emulators first (python -m p0_receiver dev with-emulators)")
    project = f"profile-{uuid.uuid4().hex[:8]}"
    ensure_topic_and_subscription(project, "p0-notifications", "profile")
    keypair = simulator.generate_keypair("ES256")
    os.environ.update(
        GOOGLE_CLOUD_PROJECT=project,
        PUBSUB_TOPIC="p0-notifications",
        P0_PUBLIC_KEYS=keypair.public_pem.decode(),
    )
    app: flask.Flask = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="receive", source=str(ROOT / "main.py")
    )
    client = app.test_client()
    document = json.loads(PREAPPROVAL_CREATED)

    def deliver(index: int, *, retryable_ok: bool = False) -> None:
        body = json.dumps({**document, "data": {**document["data"], "id": f"p-{index}"}})
        token = simulator.sign_token(keypair, now=datetime.now(tz=UTC))
        response = client.post(
            "/",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        # A cold emulator JVM on a busy machine can miss the first deadlines: a 503 is the
        # receiver's retryable answer, acceptable while warming, never while measuring.
        if response.status_code == 503 and retryable_ok:
            return
        if response.status_code != 200:
            raise SystemExit(f"unexpected HTTP {response.status_code}")

    for index in range(arguments.warm_up):
        deliver(1_000_000 + index, retryable_ok=True)
    profile = cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    profile.enable()
    for index in range(arguments.requests):
        deliver(index)
    profile.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{arguments.requests} accepted deliveries after {arguments.warm_up} warm-up: "
        f"{wall / arguments.requests * 1000:.2f} ms wall, "
        f"{cpu / arguments.requests * 1000:.2f} ms CPU per request (client signing included)"
    )
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(arguments.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
