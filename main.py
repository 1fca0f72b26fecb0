"""Cloud Functions entrypoint for the P0 notification webhook (target: ``receive``)."""

import os
import sys
from pathlib import Path

# Cloud Functions installs requirements.txt but not this project: import it from the source.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

import flask
import functions_framework

from p0_receiver.app import build_webhook

# Cold start: settings and keys are validated here, so a misconfigured deploy fails to start
# with a message naming the variable instead of answering requests wrongly; the Google clients
# are built on a background thread meanwhile.
_webhook = build_webhook(os.environ, warm_up=True)


@functions_framework.http
def receive(request: flask.Request) -> flask.Response:
    return _webhook(request)
