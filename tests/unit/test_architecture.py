"""The house by layer holds: the import contracts in pyproject.toml, and each function's imports.

The contracts (``[tool.importlinter]``) are checked by import-linter over every import,
``TYPE_CHECKING`` blocks and imports inside functions included; each is also attacked here
with the kind of import it forbids, in a copy of the source, and must then fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACT_NAMES = {
    contract["id"]: contract["name"]
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "importlinter"
    ]["contracts"]
}


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root / "src")},
        check=False,
        timeout=120,
    )


def test_every_import_contract_is_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# Each attack: (a file of the package, lines added to it, the id of the contract it breaks).
ATTACKS = {
    "the bottom imports the quarantine for a type (the old circle through the core)": (
        "core/errors.py",
        "if typing.TYPE_CHECKING:\n    from p0_receiver.core.quarantine import QuarantineReceipt\n",
        "errors-at-the-bottom",
    ),
    "the core reaches up to a use case, even only for a type": (
        "core/record.py",
        "if typing.TYPE_CHECKING:\n    from p0_receiver.usecases.deliver import DeliveryService\n",
        "layers",
    ),
    "a use case builds its own adapter": (
        "usecases/deliver.py",
        "def _client() -> object:\n    from p0_receiver.adapters import pubsub\n\n"
        "    return pubsub\n",
        "layers",
    ),
    "the webhook's edge borrows the redrive's": (
        "entrypoints/webhook.py",
        "from p0_receiver.entrypoints import redrive as _redrive\n",
        "entrypoints",
    ),
    "two core modules import each other": (
        "core/queries.py",
        "if typing.TYPE_CHECKING:\n    from p0_receiver.core import filters as _filters\n",
        "acyclic",
    ),
    "the core talks to Google": (
        "core/findings.py",
        "def _storage() -> object:\n    import google.cloud.storage\n\n"
        "    return google.cloud.storage\n",
        "pure-core",
    ),
    "a module no layer names": (
        "helpers.py",
        '"""Somewhere to put things."""\n',
        "layers",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_an_import_against_the_layers_breaks_a_contract(attack: str, tmp_path: Path) -> None:
    relative, added, contract = ATTACKS[attack]
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "p0_receiver" / relative
    original = target.read_text(encoding="utf-8") if target.exists() else ""
    target.write_text(f"{original}\nimport typing\n\n{added}", encoding="utf-8")

    result = _lint_imports(tmp_path)

    assert result.returncode == 1, result.stdout
    report = " ".join(result.stdout.split())  # the report wraps long names
    assert f"{CONTRACT_NAMES[contract]} BROKEN" in report, result.stdout


# What a function's process may never load: other functions' code, the CLI, the operator's
# use cases and their libraries. functions-framework and Flask load click themselves (Flask's
# own CLI), before our code, so it is checked over what our target adds to theirs.
# The operator's code and libraries: neither function's process loads any of it.
OPERATOR_ONLY = (
    "p0_receiver.entrypoints.cli",
    "p0_receiver.usecases.doctor",
    "p0_receiver.usecases.release",
    "p0_receiver.adapters.inspection",
    "p0_receiver.adapters.archive",
    "p0_receiver.core.lifecycle",
    "p0_receiver.core.stats",
    "p0_receiver.core.key_usage",
    "p0_receiver.devtools",
    "click",
    "rich",
    "fastavro",
    "google.cloud.storage",
)
NEVER_IN_THE_WEBHOOK = (
    *OPERATOR_ONLY,
    "p0_receiver.entrypoints.redrive",
    "p0_receiver.bootstrap.redrive",
    "p0_receiver.usecases.repair",
    "p0_receiver.usecases.audit",
    "p0_receiver.adapters.clients",
    "p0_receiver.core.filters",
    "p0_receiver.core.integrity",
    # TRACING is off by default. (google.api_core probes for an optional OpenTelemetry package,
    # which loads the bare ``opentelemetry`` namespace: none of its API or SDK.)
    "p0_receiver.adapters.tracing",
    "opentelemetry.trace",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.propagators",
)
NEVER_IN_THE_REDRIVE = (
    *OPERATOR_ONLY,
    "p0_receiver.entrypoints.webhook",
    "p0_receiver.bootstrap.webhook",
    "p0_receiver.usecases.audit.verify",
    "p0_receiver.usecases.audit.review",
)
# Loads what the runtime loads before our code, then main.py as a cold start does (the target
# composed, the webhook's client libraries imported by its warm-up); prints what main.py added.
_COLD_START = """
import json, sys
sys.path.insert(0, sys.argv[1])
import flask, functions_framework
before = set(sys.modules)
import main
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _loaded_by_main(target: str, **settings: str) -> list[str]:
    from tests.support import keypair

    env = {
        "PATH": "/usr/bin:/bin",
        "FUNCTION_TARGET": target,
        "GOOGLE_CLOUD_PROJECT": "my-project",
        "PUBSUB_TOPIC": "p0-events",
        "P0_PUBLIC_KEYS": keypair().public_pem.decode(),
        "P0_JWT_ISSUER": "https://p0.example/notifier",
        "P0_JWT_AUDIENCE": "https://hooks.example.com/p0",
        **settings,
    }
    result = subprocess.run(
        [sys.executable, "-c", _COLD_START, str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def _under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


@pytest.mark.parametrize(
    ("target", "never", "runs"),
    [
        ("receive", NEVER_IN_THE_WEBHOOK, "p0_receiver.usecases.deliver"),
        ("redrive", NEVER_IN_THE_REDRIVE, "p0_receiver.usecases.repair"),
    ],
)
def test_each_function_imports_only_what_it_runs(
    target: str, never: tuple[str, ...], runs: str
) -> None:
    loaded = _loaded_by_main(target)
    assert runs in loaded  # the check sees the target's own modules
    assert [name for name in loaded if _under(name, never)] == []


def test_tracing_on_is_what_loads_opentelemetry() -> None:
    loaded = _loaded_by_main("receive", TRACING="on")
    for module in ("p0_receiver.adapters.tracing", "opentelemetry.sdk.trace"):
        assert module in loaded
    # Cloud Trace's exporter (a gRPC client) is built at its first export, after the fork.
    assert [name for name in loaded if _under(name, ("opentelemetry.exporter",))] == []
