"""CPU per accepted delivery under load, split by process: server, each emulator, load generator.

Serves the product and the baseline (as ``versus_baseline.py`` does), warms each, then runs the
concurrency-8 load and reads the CPU time every process used from ``/proc``. On a 2-core machine
throughput is bounded by the sum, so this shows which process a change has to save CPU in.
Run with the emulators up:  python -m p0_receiver dev with-emulators -- \
    python benchmarks/cpu_by_process.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import uuid

from versus_baseline import VARIANTS, Client, served, throughput

from p0_receiver.devtools import simulator
from p0_receiver.devtools.stack import ensure_topic_and_subscription

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime of the process


def listener(port: str | int) -> int:
    """The pid listening on a loopback port (the emulators' JVMs, gunicorn's master)."""
    sockets = subprocess.run(  # noqa: S603 (a fixed command on our own loopback port)
        ["ss", "-ltnpH", f"sport = :{port}"],  # noqa: S607 (iproute2's ss, from PATH)
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(sockets.split("pid=", 1)[1].split(",", 1)[0])


def process_group(pid: int) -> list[int]:
    found = subprocess.run(  # noqa: S603 (a fixed command on our own process group)
        ["pgrep", "-g", str(os.getpgid(pid))],  # noqa: S607 (procps' pgrep, from PATH)
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(member) for member in found.split()]


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--each", type=int, default=150, help="requests per concurrent client")
    arguments = parser.parse_args()
    emulators = {
        "firestore": listener(os.environ["FIRESTORE_EMULATOR_HOST"].rsplit(":", 1)[1]),
        "pubsub": listener(os.environ["PUBSUB_EMULATOR_HOST"].rsplit(":", 1)[1]),
    }
    project = f"cpu-{uuid.uuid4().hex[:8]}"
    ensure_topic_and_subscription(project, "p0-notifications", "cpu")
    keypair = simulator.generate_keypair("ES256")
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        "PUBSUB_TOPIC": "p0-notifications",
        "P0_PUBLIC_KEYS": keypair.public_pem.decode(),
        "P0_JWT_ISSUER": simulator.DEV_ISSUER,
        "P0_JWT_AUDIENCE": simulator.DEV_AUDIENCE,
    }
    deliveries = 8 * arguments.each
    print(f"{os.cpu_count()} cores; CPU ms per delivery at concurrency 8, {deliveries} deliveries")
    for round_number in range(1, arguments.rounds + 1):
        order = list(VARIANTS) if round_number % 2 else list(reversed(VARIANTS))
        for variant in order:
            source, target = VARIANTS[variant]
            with served(source, target, env, keypair) as (port, _):
                client = Client(port, keypair)
                for _ in range(600):
                    client.deliver()
                server = process_group(listener(port))
                before = {pid: cpu_seconds(pid) for pid in [*server, *emulators.values()]}
                own = own_cpu_seconds()
                rate = throughput(port, keypair, 8, arguments.each)
                used = {pid: cpu_seconds(pid) - before[pid] for pid in before}
                own = own_cpu_seconds() - own
            per = 1000 / deliveries
            columns = [
                f"server {sum(used[pid] for pid in server) * per:5.2f}",
                *(f"{name} {used[pid] * per:5.2f}" for name, pid in emulators.items()),
                f"load generator {own * per:5.2f}",
            ]
            print(f"round {round_number} {variant:<9}{rate:6.0f} req/s   " + "   ".join(columns))


if __name__ == "__main__":
    main()
