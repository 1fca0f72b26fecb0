"""The deploy step's `gcloud functions deploy`, run by gcloud itself against a local mock.

From a copy of the build's workspace (the build upload plus what the earlier steps leave), with
the deploy step's own arguments and the key version the preflight pins, gcloud talks to an
in-process HTTP server (CLOUDSDK_API_ENDPOINT_OVERRIDES_*): the test reads the source zip it
uploads and the function it asks Cloud Functions to create, then stops it there.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.infra.gcloud_mock import STOP, Answer, MockRequest, Route, gcloud_against_mock
from tests.infra.terraform_model import CLOUDBUILD, load_cloudbuild_validator
from tests.infra.test_cloudbuild import deploy_command_line
from tests.infra.upload_sets import (
    BUILD_IGNORE_FILE,
    BUILD_LEFTOVERS,
    FUNCTION_TOP_LEVEL,
    ROOT,
    find_gcloud,
    gcloud_upload,
    materialize,
)

pytestmark = pytest.mark.infra

validator = load_cloudbuild_validator()
PROJECT_NUMBER = "123456789012"
# The APIs `gcloud functions deploy` calls, all pointed at the mock.
DEPLOY_APIS = ("CLOUDFUNCTIONS", "SERVICEUSAGE", "CLOUDRESOURCEMANAGER", "RUN", "CLOUDBUILD")


@dataclass
class Recorded:
    requests: list[tuple[str, str]] = field(default_factory=list)
    source_zip: bytes = b""
    function: dict[str, Any] = field(default_factory=dict)


def _route(recorded: Recorded) -> Route:
    def answer(request: MockRequest) -> Answer:  # noqa: PLR0911 (one answer per API gcloud asks)
        method, path = request.method, request.path
        if path.endswith(":generateUploadUrl"):
            return 200, {
                "uploadUrl": f"{request.base_url}/signed-upload",
                "storageSource": {"bucket": "gcf-v2-uploads", "object": "fun.zip"},
            }
        if path == "/signed-upload":
            recorded.source_zip = request.body
            return 200, {}
        if path.endswith("/runtimes"):
            return 200, {"runtimes": [{"name": "python313", "environment": "GEN_2"}]}
        if method == "GET" and re.fullmatch(r"/v1/projects/[^/]+", path):
            return 200, {"projectId": "my-project", "projectNumber": PROJECT_NUMBER}
        if method == "GET" and "/services/" in path and path.endswith(".com"):
            return 200, {"name": path, "state": "ENABLED"}
        if method == "GET" and "/functions/" in path:
            return 404, {"error": {"code": 404, "status": "NOT_FOUND"}}
        if method == "POST" and path.endswith("/functions"):
            recorded.function = json.loads(request.body)
        # Stop gcloud here: nothing past the create request is under test.
        return STOP

    return answer


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return validator.load_config(CLOUDBUILD)  # type: ignore[no-any-return]


@contextlib.contextmanager
def gcloud_deploy_against_mock(command_line: list[str], scratch: Path) -> Iterator[Recorded]:
    """Run ``gcloud COMMAND_LINE`` from a copy of the build workspace against the local mock of
    Google's APIs; yield what it asked for."""
    sdk = find_gcloud()
    if sdk is None:
        pytest.skip("the Google Cloud CLI is not installed")
    workspace = materialize(
        gcloud_upload(sdk, "build", ROOT, BUILD_IGNORE_FILE), scratch / "workspace", BUILD_LEFTOVERS
    )
    recorded = Recorded()
    with gcloud_against_mock(
        command_line,
        cwd=workspace,
        scratch=scratch,
        route=_route(recorded),
        endpoints=lambda url: {
            f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}": f"{url}/"
            for api in (
                "CLOUDFUNCTIONS",
                "SERVICEUSAGE",
                "CLOUDRESOURCEMANAGER",
                "RUN",
                "CLOUDBUILD",
            )
        },
        requests=recorded.requests,
    ):
        yield recorded


@pytest.fixture(scope="module")
def deployed(
    config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Recorded]:
    with gcloud_deploy_against_mock(
        deploy_command_line(config), tmp_path_factory.mktemp("deploy")
    ) as recorded:
        yield recorded


def test_the_uploaded_zip_is_the_function_source(deployed: Recorded) -> None:
    assert deployed.source_zip, deployed.requests
    with zipfile.ZipFile(io.BytesIO(deployed.source_zip)) as archive:
        # gcloud also writes empty entries for the directories it skipped; no file is in them.
        files = {name for name in archive.namelist() if not name.endswith("/")}
    package = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "src" / "p0_receiver").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert files == FUNCTION_TOP_LEVEL | package


def test_the_function_pins_the_key_version_and_gets_every_setting(
    config: dict[str, Any], deployed: Recorded
) -> None:
    function = deployed.function
    assert function, deployed.requests
    service = function["serviceConfig"]
    secret = validator.defined_substitutions(config)["_P0_PUBLIC_KEYS_SECRET"]
    assert service["secretEnvironmentVariables"] == [
        {"key": "P0_PUBLIC_KEYS", "projectId": PROJECT_NUMBER, "secret": secret, "version": "3"}
    ]
    deploy_args = validator.gcloud_args(validator.step_by_id(config, "deploy"))
    (env_flag,) = validator.flag_values(deploy_args, "--set-env-vars")
    assert set(service["environmentVariables"]) == set(validator.parse_gcloud_dict(env_flag))
    assert service["environmentVariables"]["P0_JWT_ALGORITHMS"] == "ES256,EdDSA"
    assert service["environmentVariables"]["GOOGLE_CLOUD_PROJECT"] == "my-project"
    assert service["serviceAccountEmail"].startswith("p0-receiver@")
    assert service["ingressSettings"] == "ALLOW_ALL"
    assert service["maxInstanceRequestConcurrency"] == 8
    assert service["availableCpu"] == "1"
    build = function["buildConfig"]
    assert build["entryPoint"] == "receive"
    assert build["runtime"] == "python313"
    assert build["serviceAccount"].endswith("/p0-fn-build@my-project.iam.gserviceaccount.com")
