"""gcloud itself, run against an in-process mock of the Google APIs it calls.

The mock answers JSON through a test's own ``route`` and records every (method, path); gcloud is
pointed at it with ``CLOUDSDK_API_ENDPOINT_OVERRIDES_*`` and a throwaway access token, so a test
sees the exact requests the real tool makes. Callers skip when gcloud is absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.infra.upload_sets import find_gcloud


@dataclass(frozen=True)
class MockRequest:
    method: str
    path: str
    query: str
    body: bytes
    base_url: str  # the mock's own address, for answers that send gcloud back to it


Answer = tuple[int, dict[str, Any]]  # HTTP status, JSON body
Route = Callable[[MockRequest], Answer]
# The answer that stops gcloud once the request under test has been seen.
STOP: Answer = (403, {"error": {"code": 403, "status": "PERMISSION_DENIED"}})


def _handler(
    route: Route, requests: list[tuple[str, str]], base_url: list[str]
) -> type[BaseHTTPRequestHandler]:
    class MockGoogleApis(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            requests.append((self.command, path))
            status, payload = route(MockRequest(self.command, path, query, body, base_url[0]))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        # http.server dispatches on these names.
        do_GET = do_POST = do_PUT = _handle  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    return MockGoogleApis


@contextlib.contextmanager
def gcloud_against_mock(
    arguments: list[str],
    *,
    cwd: Path,
    scratch: Path,
    route: Route,
    endpoints: Callable[[str], Mapping[str, str]],
    requests: list[tuple[str, str]],
) -> Iterator[None]:
    """Run ``gcloud ARGUMENTS`` in ``cwd`` against the mock answering with ``route``;
    ``endpoints`` maps the mock's base URL to the endpoint overrides; every request is
    appended to ``requests``."""
    gcloud = shutil.which("gcloud")
    if gcloud is None or find_gcloud() is None:
        pytest.skip("the Google Cloud CLI is not installed")
    token = scratch / "token"
    token.write_text("mock-access-token\n", encoding="utf-8")
    base_url: list[str] = []  # known once the server has its port
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(route, requests, base_url))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    base_url.append(url)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        subprocess.run(
            [gcloud, *arguments, f"--access-token-file={token}"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env={
                "PATH": os.environ.get("PATH", ""),
                "CLOUDSDK_CONFIG": str(scratch / "config"),
                "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
                "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
                **endpoints(url),
            },
        )
        yield
    finally:
        server.shutdown()
        server.server_close()
