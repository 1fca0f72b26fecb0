"""The uploaded source alone, with only requirements.txt installed, serves a signed delivery.

Cloud Functions installs requirements.txt and does not install this project, so main.py must
import the package from the uploaded files as they are. The files are the ones gcloud's own
code picks from the build's workspace (tests/infra/upload_sets.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.devtools.simulator import post_delivery
from p0_receiver.devtools.stack import function_server
from tests.conftest import Stack
from tests.infra.upload_sets import ROOT, find_gcloud, function_upload_from_build_workspace
from tests.support import token

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_uploaded_files_in_a_fresh_venv_answer_200(stack: Stack, tmp_path: Path) -> None:
    gcloud = find_gcloud()
    if gcloud is None:
        pytest.skip("the Google Cloud CLI is not installed: the upload set needs gcloud's code")
    source = tmp_path / "upload"
    for relative in function_upload_from_build_workspace(gcloud, tmp_path / "build"):
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(source / "requirements.txt"),
        ],
        check=True,
        cwd=source,
    )
    # Nothing from the checkout may leak in: no PYTHONPATH, no installed project.
    env = {**stack.function_env(), "PYTHONPATH": ""}
    with function_server(env, source_dir=source, python=python) as server:
        answer = post_delivery(server.url, PREAPPROVAL_CREATED, token=token())
    assert answer.status == 200, answer.body
    record = stack.record(answer.json()["eventId"])
    assert record is not None
    assert record["publishStatus"] == "published"
