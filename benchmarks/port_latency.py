"""Where an accepted delivery's time goes: each port call timed in-process on the emulators.

Drives DeliveryService with the real Firestore and Pub/Sub adapters (no HTTP) and prints the
median of every port call and of the whole accept(). Run with the emulators up:
  python -m p0_receiver dev with-emulators -- python benchmarks/port_latency.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from p0_receiver.bootstrap.webhook import build_verifier, google_backends
from p0_receiver.devtools import simulator
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.devtools.stack import ensure_topic_and_subscription
from p0_receiver.settings import load_settings
from p0_receiver.usecases.deliver import DeliveryPolicy, DeliveryService

WARM_UP = 20


def timed(samples: list[float], call: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            samples.append((time.perf_counter() - started) * 1000)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=200)
    count = parser.parse_args().deliveries
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        raise SystemExit("start the emulators first (see the module docstring)")

    project = f"ports-{uuid.uuid4().hex[:8]}"
    ensure_topic_and_subscription(project, "p0-notifications", "ports")
    keypair = simulator.generate_keypair()
    settings = load_settings(
        {
            "GOOGLE_CLOUD_PROJECT": project,
            "PUBSUB_TOPIC": "p0-notifications",
            "P0_PUBLIC_KEYS": keypair.public_pem.decode(),
        }
    )
    backends = google_backends(settings)
    samples: dict[str, list[float]] = defaultdict(list)
    # The accepted path: one commit (ledger entry + record), publish, mark published. The
    # step-by-step ports (remember, create) only run when that commit finds either document.
    for port, name in (
        (backends.first_delivery, "create_first"),
        (backends.ledger, "remember"),
        (backends.audit_log, "create"),
        (backends.publisher, "publish"),
        (backends.audit_log, "mark_published"),
    ):
        setattr(port, name, timed(samples[name], getattr(port, name)))
    service = DeliveryService(
        build_verifier(settings),
        backends.ledger,
        backends.audit_log,
        backends.publisher,
        DeliveryPolicy(retention_days=400, reject_unknown_event_types=False, leeway_seconds=30),
        quarantine=backends.quarantine,
        first_delivery=backends.first_delivery,
    )
    document = json.loads(PREAPPROVAL_CREATED)
    for index in range(WARM_UP + count):
        data = {**document["data"], "id": f"ports-{index}"}
        body = json.dumps({**document, "data": data}).encode()
        token = simulator.sign_token(keypair, now=datetime.now(tz=UTC))
        verified = service.authenticate(f"Bearer {token}")
        timed(samples["accept (total)"], service.accept)(verified, body, now=datetime.now(tz=UTC))
    print(f"median ms over {count} deliveries (after {WARM_UP} warm-up)")
    for name, values in samples.items():
        if len(values) > WARM_UP:  # a port the accepted path never called has nothing to show
            print(f"{name:<16}{statistics.median(values[WARM_UP:]):>8.2f}")


if __name__ == "__main__":
    main()
