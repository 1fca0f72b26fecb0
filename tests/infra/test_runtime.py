"""One Python everywhere: the functions' runtime, the build's images, the tools' target, CI's venv.

The deploy-source test installs requirements.txt into a venv of the interpreter running the
tests, so that install proves the functions' runtime only when this interpreter is that Python:
the last test here says so.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from typing import Any

import pytest

pytest.importorskip(
    "yaml", reason="PyYAML is not installed (pip install -r requirements-infra.txt)"
)

from tests.infra.terraform_model import CLOUDBUILD, ROOT, load_cloudbuild_validator

pytestmark = pytest.mark.infra

RUNTIME = "python313"
MAJOR, MINOR = 3, 13

validator = load_cloudbuild_validator()


@pytest.fixture(scope="module")
def steps() -> list[dict[str, Any]]:
    return list(validator.load_config(CLOUDBUILD)["steps"])


def test_both_functions_deploy_on_one_runtime(steps: list[dict[str, Any]]) -> None:
    runtimes = [
        str(arg).removeprefix("--runtime=")
        for step in steps
        for arg in step.get("args", [])
        if str(arg).startswith("--runtime=")
    ]
    assert runtimes == [RUNTIME, RUNTIME]  # the webhook, then the redrive function


def test_every_python_step_runs_the_runtime_s_python(steps: list[dict[str, Any]]) -> None:
    images = [str(step["name"]) for step in steps if str(step["name"]).startswith("python:")]
    assert images, "the build's test steps run in Python images"
    for image in images:
        assert image.startswith(f"python:{MAJOR}.{MINOR}-"), image


def test_the_tools_target_the_runtime_s_python() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["requires-python"] == f">={MAJOR}.{MINOR}"
    assert project["tool"]["ruff"]["target-version"] == f"py{MAJOR}{MINOR}"
    assert project["tool"]["mypy"]["python_version"] == f"{MAJOR}.{MINOR}"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^PYTHON \?= \$\(shell bash scripts/python313\.sh\)$", makefile, re.MULTILINE)
    assert f"sys.version_info[:2] != ({MAJOR}, {MINOR})" in makefile
    finder = (ROOT / "scripts" / "python313.sh").read_text(encoding="utf-8")
    assert f"sys.version_info[:2] != ({MAJOR}, {MINOR})" in finder


def test_the_makefile_finds_the_runtime_s_python_with_no_python_on_path_named() -> None:
    """README's commands on a fresh machine: ``python3.13`` need not be on PATH (a pyenv
    installation of 3.13 that is not the active version is found too)."""
    found = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "python313.sh")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.strip()
    version = subprocess.run(
        [found, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == f"({MAJOR}, {MINOR})"


def test_the_tests_run_on_the_runtime_s_python() -> None:
    assert sys.version_info[:2] == (MAJOR, MINOR)
