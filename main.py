"""Cloud Functions entrypoints: the P0 webhook (`receive`) and the scheduled redrive (`redrive`).

Both are deployed from this same source as two functions; each process serves one target.
"""

import os
import sys
from pathlib import Path

# Cloud Functions installs requirements.txt but not this project: import it from the source.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

import flask
import functions_framework

from p0_receiver.bootstrap.functions import build_target

# Cold start: the served target's settings (and, for the webhook, keys) are validated here, so
# a misconfigured deploy fails to start with a message naming the variable; the webhook's Google
# clients are built on a background thread meanwhile.
_handler = build_target(os.environ, warm_up=True)


@functions_framework.http
def receive(request: flask.Request) -> flask.Response:
    return _handler(request)


@functions_framework.http
def redrive(request: flask.Request) -> flask.Response:
    return _handler(request)
