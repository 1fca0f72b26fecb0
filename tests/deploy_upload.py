"""What `gcloud functions deploy --source=.` uploads: the tree minus `.gcloudignore`."""

from __future__ import annotations

import os
from pathlib import Path

import pathspec

ROOT = Path(__file__).resolve().parents[1]


def uploaded_files(root: Path = ROOT) -> list[str]:
    """Relative paths gcloud would upload, honouring .gcloudignore (gitignore syntax)."""
    spec = pathspec.GitIgnoreSpec.from_lines((root / ".gcloudignore").read_text().splitlines())
    files: list[str] = []
    for directory, subdirectories, names in os.walk(root):
        relative = Path(directory).relative_to(root)
        # Prune ignored directories instead of walking .venv and friends.
        subdirectories[:] = [
            name
            for name in subdirectories
            if not spec.match_file(f"{(relative / name).as_posix()}/")
        ]
        files.extend(
            path for name in names if not spec.match_file(path := (relative / name).as_posix())
        )
    return sorted(files)
