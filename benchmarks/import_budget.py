"""What each function's cold start imports: our own modules' import time, per target.

Runs ``python -X importtime -c "import main"`` in fresh interpreters, as a cold start imports
``main.py`` (the target composed, its settings and keys validated, the webhook's client
libraries imported by its warm-up), and prints for each target the minimum over the runs of:
the summed self time of our own modules (``p0_receiver.*``), the whole import of ``main``,
and the costliest of our modules. The webhook's goal is 30 ms of our own modules.

Needs no emulator: nothing connects at import. ``make bench`` runs it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from p0_receiver.devtools import simulator

ROOT = Path(__file__).resolve().parents[1]
OWN_GOAL_MS = {"receive": 30.0}
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


@dataclass(frozen=True)
class ImportRun:
    own_us: int  # the self time of every p0_receiver module, summed
    main_us: int  # main.py's cumulative import, everything included
    own_modules: dict[str, int]  # self time of each of our modules


def one_run(env: dict[str, str]) -> ImportRun:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import main"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    own: dict[str, int] = {}
    main_us = 0
    for line in result.stderr.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        self_us, cumulative_us, name = int(match[1]), int(match[2]), match[4]
        if name == "p0_receiver" or name.startswith("p0_receiver."):
            own[name] = self_us
        elif name == "main":
            main_us = cumulative_us
    return ImportRun(sum(own.values()), main_us, own)


def target_env(target: str, keypair: simulator.DevKeypair) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "FUNCTION_TARGET": target,
        "GOOGLE_CLOUD_PROJECT": "import-budget",
        "PUBSUB_TOPIC": "p0-notifications",
        "P0_PUBLIC_KEYS": keypair.public_pem.decode(),
        "P0_JWT_ISSUER": simulator.DEV_ISSUER,
        "P0_JWT_AUDIENCE": simulator.DEV_AUDIENCE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per target")
    parser.add_argument("--top", type=int, default=6, help="costliest own modules listed")
    arguments = parser.parse_args()
    keypair = simulator.generate_keypair("ES256")
    print(f"python -X importtime -c 'import main', {arguments.runs} fresh interpreters each")
    for target in ("receive", "redrive"):
        env = target_env(target, keypair)
        one_run(env)  # bytecode compiled and the page cache warm before anything is counted
        runs = [one_run(env) for _ in range(arguments.runs)]
        fastest = min(runs, key=lambda run: run.own_us)
        own_ms = fastest.own_us / 1000
        slowest_ms = max(run.own_us for run in runs) / 1000
        main_ms = min(run.main_us for run in runs) / 1000
        goal = OWN_GOAL_MS.get(target)
        verdict = ""
        if goal is not None:
            verdict = f"  goal <= {goal:.0f} ms: {'met' if own_ms <= goal else 'NOT met'}"
        print(
            f"\n{target}: our modules {own_ms:.1f} ms (min; max {slowest_ms:.1f}), "
            f"{len(fastest.own_modules)} modules; all of main {main_ms:.0f} ms{verdict}"
        )
        costliest = sorted(fastest.own_modules.items(), key=lambda item: -item[1])
        for name, self_us in costliest[: arguments.top]:
            print(f"  {self_us / 1000:6.1f} ms  {name}")


if __name__ == "__main__":
    main()
