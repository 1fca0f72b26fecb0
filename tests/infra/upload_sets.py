"""Upload sets as gcloud computes them: the build's source and the function's source.

Runs scripts/upload_set.py with the Google Cloud CLI's own interpreter and libraries, so the
ignore-file semantics are gcloud's, not an approximation. Callers skip when gcloud is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "upload_set.py"
BUILD_IGNORE_FILE = ".gcloudbuildignore"
FUNCTION_IGNORE_FILE = ".gcloudignore"
# Beside src/, the only files the function needs; .gcloudignore itself is uploaded on purpose.
FUNCTION_TOP_LEVEL = frozenset({"main.py", "requirements.txt", FUNCTION_IGNORE_FILE})

# What the build's own steps leave in the workspace before the deploy step runs (make venv,
# lint, check-infra, the test tiers), and local state a developer's checkout holds.
BUILD_LEFTOVERS = (
    ".venv/bin/python",
    ".venv/lib/python3.13/site-packages/six.py",
    ".venv-checkov/bin/checkov",
    ".cache/provider-schemas/google.json",
    ".mypy_cache/3.13/cache.json",
    ".ruff_cache/CACHEDIR.TAG",
    ".pytest_cache/README.md",
    ".hypothesis/examples/x",
    ".dev/keys/private.pem",
    "src/p0_receiver/__pycache__/app.cpython-313.pyc",
)
LOCAL_STATE = (
    *BUILD_LEFTOVERS,
    ".git/HEAD",
    "terraform/terraform.tfvars",
    "terraform/terraform.tfstate",
    "terraform/terraform.tfstate.backup",
    "terraform/.terraform/providers/x",
)


@dataclass(frozen=True)
class Gcloud:
    python: Path
    sdk_root: Path


@cache
def find_gcloud() -> Gcloud | None:
    """gcloud's bundled interpreter and SDK root, or None when the CLI is not installed."""
    executable = shutil.which("gcloud")
    if executable is None:
        return None
    answer = subprocess.run(
        [
            executable,
            "info",
            "--format=value(basic.python_location,installation.sdk_root)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"CLOUDSDK_CORE_DISABLE_PROMPTS": "1", "PATH": _path()},
    )
    python, sdk_root = answer.stdout.split()
    return Gcloud(python=Path(python), sdk_root=Path(sdk_root))


def _path() -> str:
    return os.environ.get("PATH", "/usr/bin:/bin")


def gcloud_upload(
    gcloud: Gcloud, kind: str, directory: Path, ignore_file: str | None = None
) -> list[str]:
    """Relative paths `gcloud builds submit` (kind "build") or `gcloud functions deploy`
    (kind "function") would upload from directory."""
    lib = gcloud.sdk_root / "lib"
    command = [str(gcloud.python), str(SCRIPT), kind, str(directory)]
    if ignore_file is not None:
        command.append(ignore_file)
    answer = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        env={
            "PATH": _path(),
            "PYTHONPATH": f"{lib}:{lib / 'third_party'}",
            # A throwaway home: gcloud's code must not read or write a real configuration.
            "CLOUDSDK_CONFIG": str(directory.parent / ".gcloud-config"),
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        },
    )
    files = json.loads(answer.stdout)
    assert isinstance(files, list)
    return [str(name) for name in files]


def source_files() -> list[str]:
    """The repository's files: git's list in a checkout, else the workspace as uploaded."""
    git = shutil.which("git")
    if git is not None and (ROOT / ".git").exists():
        listed = subprocess.run(
            [git, "ls-files", "-z"], capture_output=True, cwd=ROOT, check=True
        ).stdout.decode()
        return sorted(name for name in listed.split("\0") if name and (ROOT / name).is_file())
    gcloud = find_gcloud()
    assert gcloud is not None
    return gcloud_upload(gcloud, "build", ROOT, BUILD_IGNORE_FILE)


def materialize(files: Iterable[str], target: Path, extra: Iterable[str] = ()) -> Path:
    """A copy of the given repository files under target, plus placeholder files."""
    for relative in files:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, destination)
    for relative in extra:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text("placeholder\n", encoding="utf-8")
    return target


def function_upload_from_build_workspace(gcloud: Gcloud, scratch: Path) -> list[str]:
    """What the deploy step uploads: the build's upload set, after the build's own steps ran."""
    build = gcloud_upload(gcloud, "build", ROOT, BUILD_IGNORE_FILE)
    workspace = materialize(build, scratch / "workspace", BUILD_LEFTOVERS)
    return gcloud_upload(gcloud, "function", workspace)
