"""Per-request latency of the receiver on a real functions-framework server and the emulators.

Prints median and p99 for three paths, each against the same server in the same run:
  floor     - GET answered 405 by our edge (framework + WSGI + our logging: the baseline)
  accepted  - a new signed delivery: verify, parse, ledger create, audit create, publish, mark
  duplicate - the same body again: verify, parse, ledger create, audit lookup and count
Run with the emulators up:  make bench   (or: python -m p0_receiver dev with-emulators --
python benchmarks/request_latency.py [--requests N])
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from p0_receiver.devtools import simulator
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.devtools.stack import ensure_topic_and_subscription, function_server


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(count: int, send: Callable[[int], int]) -> list[float]:
    timings = []
    for index in range(count):
        started = time.perf_counter()
        status = send(index)
        timings.append((time.perf_counter() - started) * 1000)
        if status not in (200, 405):
            raise SystemExit(f"unexpected HTTP {status}")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    arguments = parser.parse_args()
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        raise SystemExit("start the emulators first: make bench")

    project = f"bench-{uuid.uuid4().hex[:8]}"
    ensure_topic_and_subscription(project, "p0-notifications", "bench")
    keypair = simulator.generate_keypair("ES256")
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        "PUBSUB_TOPIC": "p0-notifications",
        "P0_PUBLIC_KEYS": keypair.public_pem.decode(),
    }
    document = json.loads(PREAPPROVAL_CREATED)

    def body(index: int) -> bytes:
        return json.dumps(
            {**document, "data": {**document["data"], "id": f"bench-{index}"}}
        ).encode()

    with function_server(env, stdout=os.open(os.devnull, os.O_WRONLY)) as server:

        def signed(payload: bytes) -> int:
            token = simulator.sign_token(keypair, now=datetime.now(tz=UTC))
            return simulator.post_delivery(server.url, payload, token=token).status

        measure(20, lambda i: signed(body(10_000 + i)))  # warm the server and both emulators
        results = {
            "floor (405)": measure(
                arguments.requests,
                lambda _: simulator.post_delivery(server.url, b"", token=None, method="GET").status,
            ),
            "accepted": measure(arguments.requests, lambda i: signed(body(i))),
            "duplicate": measure(arguments.requests, lambda i: signed(body(i))),
        }
    floor = statistics.median(results["floor (405)"])
    print(f"{arguments.requests} sequential requests per path, one client, loopback")
    print(f"{'path':<14}{'median ms':>11}{'p99 ms':>9}{'x floor':>9}")
    for name, timings in results.items():
        median = statistics.median(timings)
        print(f"{name:<14}{median:>11.2f}{percentile(timings, 0.99):>9.2f}{median / floor:>9.1f}")


if __name__ == "__main__":
    main()
