"""The manual deploy command, run by gcloud itself against a local mock of the Google APIs.

`gcloud builds submit` is pointed at an in-process HTTP server (CLOUDSDK_API_ENDPOINT_OVERRIDES_*)
with a throwaway token: the test sees the exact requests a submitter's gcloud makes (the bucket
read before staging, the tarball, the build request) and stops it at the build request.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.infra.gcloud_mock import STOP, Answer, MockRequest, Route, gcloud_against_mock
from tests.infra.terraform_model import Module, expression, load_module
from tests.infra.upload_sets import BUILD_IGNORE_FILE, ROOT, find_gcloud, gcloud_upload

pytestmark = pytest.mark.infra

BUCKET = "my-project-p0-src"
# Roles that hold storage.buckets.get, per Cloud Storage's IAM roles reference; the object
# roles (objectViewer, objectCreator, objectUser, objectAdmin) do not.
ROLES_WITH_BUCKETS_GET = {
    "roles/storage.legacyBucketReader",
    "roles/storage.legacyBucketWriter",
    "roles/storage.legacyBucketOwner",
    "roles/storage.admin",
}


@dataclass
class Recorded:
    requests: list[tuple[str, str]] = field(default_factory=list)
    tarball: bytes = b""
    build: dict[str, Any] = field(default_factory=dict)


def _multipart(body: bytes) -> tuple[bytes, bytes]:
    """The JSON metadata and the file of gcloud's multipart/related upload. The delimiter is
    read from the body's first line (apitools writes LF line ends and a binary part)."""
    delimiter = body.split(b"\n", 1)[0].rstrip(b"\r")
    assert delimiter.startswith(b"--"), body[:80]
    payloads = []
    for part in body.split(delimiter)[1:3]:
        separator = b"\r\n\r\n" if b"\r\n\r\n" in part else b"\n\n"
        payload = part.split(separator, 1)[1]
        payloads.append(payload.removesuffix(b"\n").removesuffix(b"\r"))
    return payloads[0], payloads[1]


def _route(recorded: Recorded) -> Route:
    def answer(request: MockRequest) -> Answer:
        if request.method == "GET" and re.fullmatch(r"/storage/v1/b/[^/]+", request.path):
            return 200, {"kind": "storage#bucket", "name": BUCKET, "location": "US"}
        if request.path.startswith("/upload/storage/v1/b/"):
            metadata, content = _multipart(request.body)
            recorded.tarball = content
            size = json.loads(metadata)["size"]
            (name,) = parse_qs(request.query)["name"]
            return 200, {"kind": "storage#object", "bucket": BUCKET, "name": name, "size": size}
        if request.method == "POST" and request.path.endswith("/builds"):
            recorded.build = json.loads(request.body)
        # Stop gcloud here: nothing past the build request is under test.
        return STOP

    return answer


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    recorded = Recorded()
    substitutions = "^;^_P0_JWT_ALGORITHMS=ES256,EdDSA;_REGION=europe-west1"
    with gcloud_against_mock(
        [
            "builds",
            "submit",
            ".",
            "--project=my-project",
            "--region=europe-west1",
            "--config=cloudbuild.yaml",
            f"--ignore-file={BUILD_IGNORE_FILE}",
            "--service-account=projects/my-project/serviceAccounts/p0-deployer@my-project.iam.gserviceaccount.com",
            f"--gcs-source-staging-dir=gs://{BUCKET}/source",
            f"--substitutions={substitutions}",
        ],
        cwd=ROOT,
        scratch=tmp_path_factory.mktemp("submit"),
        route=_route(recorded),
        endpoints=lambda url: {
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": f"{url}/storage/v1/",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDBUILD": f"{url}/",
        },
        requests=recorded.requests,
    ):
        yield recorded


def test_staging_reads_the_bucket_first_and_submitters_may(submitted: Recorded) -> None:
    assert submitted.requests[0] == ("GET", f"/storage/v1/b/{BUCKET}")
    module: Module = load_module()
    bucket_roles = {
        body["role"]
        for (kind, _), body in module.resources.items()
        if kind == "google_storage_bucket_iam_member"
        and expression(body.get("for_each")) == "toset(var.build_submitters)"
        and "condition" not in body
    }
    assert bucket_roles & ROLES_WITH_BUCKETS_GET, bucket_roles


def test_the_uploaded_tarball_is_the_build_upload_set(submitted: Recorded) -> None:
    with tarfile.open(fileobj=io.BytesIO(submitted.tarball), mode="r:gz") as tar:
        members = sorted(m.name for m in tar.getmembers() if m.isfile())
    gcloud = find_gcloud()
    assert gcloud is not None
    assert members == sorted(gcloud_upload(gcloud, "build", ROOT, BUILD_IGNORE_FILE))
    assert {"Makefile", "pyproject.toml", "cloudbuild.yaml", ".gcloudignore"} <= set(members)
    assert not any(name.startswith((".venv", ".git/", ".dev/", ".cache/")) for name in members)


def test_the_build_request_runs_as_the_deployer_with_the_substitutions(
    submitted: Recorded,
) -> None:
    build = submitted.build
    assert build, submitted.requests
    assert build["serviceAccount"].endswith("/p0-deployer@my-project.iam.gserviceaccount.com")
    assert build["substitutions"]["_P0_JWT_ALGORITHMS"] == "ES256,EdDSA"
    assert build["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    source = build["source"]["storageSource"]
    assert source["bucket"] == BUCKET
    assert source["object"].startswith("source/")
    assert [step["id"] for step in build["steps"]][-5:] == [
        "deploy",
        "smoke",
        "deploy-redrive",
        "grant-redrive-invoker",
        "smoke-redrive",
    ]
    assert Path(source["object"]).suffix == ".tgz"
