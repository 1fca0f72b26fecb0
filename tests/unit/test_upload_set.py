"""A deploy uploads the function's code and nothing else (no tests, keys, state or tooling)."""

from __future__ import annotations

from pathlib import PurePosixPath

from tests.deploy_upload import ROOT, uploaded_files


def test_upload_is_main_requirements_and_the_package_source() -> None:
    uploaded = uploaded_files()
    assert "main.py" in uploaded
    assert "requirements.txt" in uploaded
    outside_package = [
        path
        for path in uploaded
        if path not in {"main.py", "requirements.txt"} and not path.startswith("src/p0_receiver/")
    ]
    assert outside_package == []
    assert all(PurePosixPath(path).suffix == ".py" for path in uploaded if path.startswith("src/"))
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "src/p0_receiver").rglob("*.py")}
    assert package <= set(uploaded)
