"""What gcloud itself would upload from a directory, computed with gcloud's own code.

Run with the Google Cloud CLI's bundled interpreter and its `lib/` and `lib/third_party` on
`sys.path` (tests/infra/upload_sets.py does that). Prints a JSON list of relative paths:

  upload_set.py build DIR [IGNORE_FILE]  # `gcloud builds submit DIR [--ignore-file=IGNORE_FILE]`
  upload_set.py function DIR             # `gcloud functions deploy --gen2 --source=DIR`

`build` is the source snapshot `gcloud builds submit` tars up; `function` is the zip that
`gcloud functions deploy` builds, read back from the archive it writes.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import zipfile


def build_upload(directory: str, ignore_file: str | None) -> list[str]:
    from googlecloudsdk.api_lib.cloudbuild import snapshot  # type: ignore[import-not-found]

    # Snapshot resolves symlinks relative to the working directory, as gcloud runs it.
    os.chdir(directory)
    return sorted(snapshot.Snapshot(directory, ignore_file=ignore_file).files)


def function_upload(directory: str) -> list[str]:
    from googlecloudsdk.command_lib.functions import source_util  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory() as zip_dir:
        archive = source_util.CreateSourcesZipFile(zip_dir, directory)
        with zipfile.ZipFile(archive) as opened:
            return sorted(name for name in opened.namelist() if not name.endswith("/"))


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in {"build", "function"}:
        print(__doc__, file=sys.stderr)
        return 2
    directory = os.path.abspath(argv[1])
    if argv[0] == "build":
        files = build_upload(directory, argv[2] if len(argv) > 2 else None)
    else:
        files = function_upload(directory)
    print(json.dumps(files))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
