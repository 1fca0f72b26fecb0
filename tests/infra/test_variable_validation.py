"""terraform/variables.tf's validations, evaluated by Terraform itself.

Planning a module made of the variables alone needs no provider, so real Terraform runs here:
what it refuses is refused at plan time, before gcloud or Cloud Build would refuse it later.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.terraform_model import TERRAFORM_DIR

pytestmark = pytest.mark.infra

BASE = {"project_id": "my-security-project"}


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed: variable validations were NOT evaluated")
    directory = tmp_path_factory.mktemp("variables")
    shutil.copy(TERRAFORM_DIR / "variables.tf", directory / "variables.tf")
    subprocess.run(
        [terraform, "init", "-input=false", "-no-color"],
        cwd=directory,
        env=_env(directory),
        check=True,
        capture_output=True,
    )
    return directory


def _env(directory: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(directory),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
    }


def _plan(directory: Path, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    terraform = shutil.which("terraform")
    assert terraform is not None
    flags = [f"-var={name}={value}" for name, value in {**BASE, **variables}.items()]
    return subprocess.run(
        [terraform, "plan", "-input=false", "-no-color", "-lock=false", *flags],
        cwd=directory,
        env=_env(directory),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"function_cpu": "0.583", "concurrency": "1"},
        {"function_cpu": "1", "concurrency": "80"},
        {"p0_jwt_algorithms": "RS256"},
        {"p0_jwt_algorithms": "ES256,EdDSA"},
        {"p0_token_reuse": "reject", "p0_token_burst_seconds": "0"},
        {"quarantine_max_per_token": "1000", "quarantine_retention_days": "3650"},
    ],
)
def test_valid_settings_plan(plan_dir: Path, variables: dict[str, str]) -> None:
    answer = _plan(plan_dir, variables)
    assert answer.returncode == 0, answer.stderr


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        # Gen2 refuses this at deploy time; the module refuses it at plan time.
        ({"function_cpu": "0.583", "concurrency": "8"}, "concurrency above 1 needs function_cpu"),
        ({"function_cpu": "0.333"}, "concurrency above 1 needs function_cpu"),
        ({"p0_jwt_algorithms": "HS256"}, "p0_jwt_algorithms must be empty"),
        ({"p0_jwt_algorithms": "RS256, ES256"}, "p0_jwt_algorithms must be empty"),
        ({"p0_jwt_algorithms": "none"}, "p0_jwt_algorithms must be empty"),
        ({"p0_token_reuse": "allow"}, "p0_token_reuse must be burst, reject or accept"),
        ({"p0_token_burst_seconds": "61"}, "p0_token_burst_seconds must be a whole number"),
        ({"firestore_quarantine_collection": "a/b"}, "firestore_quarantine_collection must"),
        ({"quarantine_max_per_token": "0"}, "quarantine_max_per_token must be a whole number"),
        ({"quarantine_retention_days": "0"}, "quarantine_retention_days must be a whole number"),
    ],
)
def test_invalid_settings_are_refused_at_plan_time(
    plan_dir: Path, variables: dict[str, str], message: str
) -> None:
    answer = _plan(plan_dir, variables)
    assert answer.returncode != 0
    assert message in " ".join(answer.stderr.split()), answer.stderr


def test_the_example_variables_file_plans(plan_dir: Path) -> None:
    terraform = shutil.which("terraform")
    assert terraform is not None
    example = TERRAFORM_DIR / "terraform.tfvars.example"
    answer = subprocess.run(
        [terraform, "plan", "-input=false", "-no-color", "-lock=false", f"-var-file={example}"],
        cwd=plan_dir,
        env=_env(plan_dir),
        capture_output=True,
        text=True,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
