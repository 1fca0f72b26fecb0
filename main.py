"""Cloud Functions entrypoint for the P0 notification webhook (target: ``receive``)."""

import os
import sys
from pathlib import Path

# Cloud Functions installs requirements.txt but not this project: import it from the source.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

import flask  # noqa: E402
import functions_framework  # noqa: E402

from p0_receiver.app import build_webhook  # noqa: E402

# Cold start: settings and keys are validated here, so a misconfigured deploy fails to start
# with a message naming the variable instead of answering requests wrongly.
_webhook = build_webhook(os.environ)


@functions_framework.http
def receive(request: flask.Request) -> flask.Response:
    return _webhook(request)
