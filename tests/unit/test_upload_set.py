"""What gcloud uploads, computed with gcloud's own ignore logic (scripts/upload_set.py).

The build (`gcloud builds submit --ignore-file=.gcloudbuildignore`) must carry everything its
`make` steps need and no local state; the function (`gcloud functions deploy --source=.`, run
inside the build's workspace) must carry main.py, requirements.txt and src/ only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

from tests.infra.upload_sets import (
    BUILD_IGNORE_FILE,
    FUNCTION_TOP_LEVEL,
    LOCAL_STATE,
    ROOT,
    Gcloud,
    find_gcloud,
    function_upload_from_build_workspace,
    gcloud_upload,
    materialize,
    source_files,
)

_MAKE_TARGET = re.compile(r"\bmake\s+([a-z][a-z0-9-]*)")


@pytest.fixture(scope="module")
def gcloud() -> Gcloud:
    found = find_gcloud()
    if found is None:
        pytest.skip("the Google Cloud CLI is not installed: upload sets need gcloud's own code")
    return found


def _make() -> str:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    return make


def _make_targets_of_the_build() -> set[str]:
    config = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text(encoding="utf-8"))
    return {
        target
        for step in config["steps"]
        for arg in step.get("args", [])
        for target in _MAKE_TARGET.findall(arg)
    }


def test_build_uploads_every_repository_file_and_no_local_state(
    gcloud: Gcloud, tmp_path: Path
) -> None:
    repository = source_files()
    checkout = materialize(repository, tmp_path / "checkout", LOCAL_STATE)
    uploaded = gcloud_upload(gcloud, "build", checkout, BUILD_IGNORE_FILE)
    assert sorted(uploaded) == sorted(repository)


def test_build_upload_of_this_checkout_holds_no_local_state(gcloud: Gcloud) -> None:
    uploaded = gcloud_upload(gcloud, "build", ROOT, BUILD_IGNORE_FILE)
    top_level = {PurePosixPath(path).parts[0] for path in uploaded}
    assert top_level & {".git", ".venv", ".venv-checkov", ".dev", ".cache"} == set()
    assert [path for path in uploaded if path.endswith((".tfstate", ".tfvars", ".pyc"))] == []


def test_every_make_target_of_the_build_runs_in_its_upload(gcloud: Gcloud, tmp_path: Path) -> None:
    make = _make()
    targets = _make_targets_of_the_build()
    assert {"venv", "lint", "test-unit", "test"} <= targets
    uploaded = gcloud_upload(gcloud, "build", ROOT, BUILD_IGNORE_FILE)
    workspace = materialize(uploaded, tmp_path / "workspace")
    for target in sorted(targets):
        dry_run = subprocess.run(
            [make, "-n", target], cwd=workspace, capture_output=True, text=True, check=False
        )
        assert dry_run.returncode == 0, f"make -n {target}: {dry_run.stderr}"


def test_default_ignore_would_have_broken_the_build(gcloud: Gcloud, tmp_path: Path) -> None:
    # Without --ignore-file, `gcloud builds submit` uses .gcloudignore: the function's set.
    uploaded = gcloud_upload(gcloud, "build", ROOT)
    workspace = materialize(uploaded, tmp_path / "workspace")
    dry_run = subprocess.run(
        [_make(), "-n", "lint"], cwd=workspace, capture_output=True, text=True, check=False
    )
    assert dry_run.returncode != 0


def test_function_upload_from_the_build_workspace_is_the_package(
    gcloud: Gcloud, tmp_path: Path
) -> None:
    uploaded = function_upload_from_build_workspace(gcloud, tmp_path)
    package = {path for path in source_files() if path.startswith("src/")}
    assert set(uploaded) == FUNCTION_TOP_LEVEL | package
    assert all(PurePosixPath(path).suffix == ".py" for path in package)
    assert {p.relative_to(ROOT).as_posix() for p in (ROOT / "src/p0_receiver").rglob("*.py")} <= (
        set(uploaded)
    )


def test_function_upload_from_a_trigger_checkout_is_the_package(
    gcloud: Gcloud, tmp_path: Path
) -> None:
    # A trigger's workspace is a clone (no build ignore file applies), then the build's steps.
    repository = source_files()
    workspace = materialize(repository, tmp_path / "clone", LOCAL_STATE)
    uploaded = gcloud_upload(gcloud, "function", workspace)
    assert set(uploaded) == FUNCTION_TOP_LEVEL | {p for p in repository if p.startswith("src/")}


def test_without_its_ignore_file_the_function_upload_takes_the_venv(
    gcloud: Gcloud, tmp_path: Path
) -> None:
    # The old build workspace held neither ignore file (.gcloudignore ignored both itself and
    # .gitignore): gcloud then generates its default, which keeps the build's virtualenv.
    repository = [p for p in source_files() if p not in {".gcloudignore", ".gitignore"}]
    workspace = materialize(repository, tmp_path / "workspace", LOCAL_STATE)
    uploaded = gcloud_upload(gcloud, "function", workspace)
    assert any(path.startswith(".venv/") for path in uploaded)
