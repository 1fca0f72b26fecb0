"""`make clean` removes everything the Makefile's targets create and nothing else.

The leftovers are the build's own list (tests/infra/upload_sets.py), so a new cache added
there must also be cleaned; a developer's Terraform variables and state are never touched.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.upload_sets import BUILD_LEFTOVERS, materialize

TRACKED = ("Makefile", "main.py", "src/p0_receiver/__init__.py", "terraform/main.tf")
# Created by hand, not by a target: clean must leave them.
THE_DEVELOPERS = ("terraform/terraform.tfvars", "terraform/terraform.tfstate", "notes.txt")


MAKE = shutil.which("make")


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_make_clean_leaves_only_what_it_did_not_create(tmp_path: Path) -> None:
    leftovers = (*BUILD_LEFTOVERS, "tests/unit/__pycache__/x.pyc", "src/p0_receiver.egg-info/x")
    checkout = materialize(TRACKED, tmp_path / "checkout", (*leftovers, *THE_DEVELOPERS))

    assert MAKE is not None
    subprocess.run([MAKE, "clean"], cwd=checkout, check=True, capture_output=True)

    left = {str(p.relative_to(checkout)) for p in checkout.rglob("*") if p.is_file()}
    assert left == {*TRACKED, *THE_DEVELOPERS}
