"""The scheduled redrive's infrastructure: Terraform (scheduler, identities, the one invoker
grant) and its Cloud Build deploy and smoke steps, against the code's settings."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "hcl2", reason="python-hcl2 is not installed (pip install -r requirements-infra.txt)"
)
pytest.importorskip(
    "yaml", reason="PyYAML is not installed (pip install -r requirements-infra.txt)"
)

from p0_receiver.settings import RedriveSettings
from tests.infra.gcloud_mock import STOP, Answer, MockRequest, gcloud_against_mock
from tests.infra.terraform_model import (
    CLOUDBUILD,
    Module,
    expression,
    load_cloudbuild_validator,
    load_module,
)
from tests.infra.test_cloudbuild import _gcloud_parses
from tests.infra.test_function_deploy import Recorded, gcloud_deploy_against_mock
from tests.infra.test_terraform import plain_default
from tests.infra.upload_sets import (
    ROOT,
)

pytestmark = pytest.mark.infra

validator = load_cloudbuild_validator()
SCHEDULER = "google_service_account.scheduler.member"
REDRIVE = "google_service_account.redrive.member"
# How each setting the redrive target reads reaches it (the rest keep the code's default).
REDRIVE_SETTING_VARIABLES = {
    "REDRIVE_MIN_AGE_SECONDS": "redrive_min_age_seconds",
    "REDRIVE_MAX_RECORDS": "redrive_max_records",
}


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return validator.load_config(CLOUDBUILD)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def redrive_args(config: dict[str, Any]) -> list[str]:
    return list(validator.gcloud_args(validator.step_by_id(config, "deploy-redrive")))


def _grants_to(module: Module, member: str) -> set[tuple[str, str]]:
    return {
        (kind, str(body["role"]))
        for (kind, _), body in module.resources.items()
        if "role" in body and "member" in body and expression(body["member"]) == member
    }


def _condition(body: dict[str, Any]) -> str:
    (condition,) = body["condition"]
    return str(condition["expression"]).replace('\\"', '"')


def test_terraform_grants_the_scheduler_no_role_and_no_one_an_invoker_role(module: Module) -> None:
    # Cloud Run supplies no resource attributes to IAM Conditions: a project-level run.invoker
    # grant conditioned on the service's name never matches (every scheduled call: 403), and an
    # unconditioned one reaches every service in the project. The deploy grants it instead.
    assert _grants_to(module, SCHEDULER) == set()
    invokers = [
        (kind, name)
        for (kind, name), body in module.resources.items()
        if str(body.get("role", "")).endswith((".invoker", "run.invoker"))
    ]
    assert invokers == []


def test_the_deploy_grants_the_scheduler_invoker_on_the_redrive_alone(
    config: dict[str, Any], module: Module
) -> None:
    step = validator.step_by_id(config, "grant-redrive-invoker")
    assert step["waitFor"] == ["deploy-redrive"]
    assert validator.gcloud_args(step)[:3] == [
        "functions",
        "add-invoker-policy-binding",
        "${_REDRIVE_FUNCTION_NAME}",
    ]
    assert "--member=serviceAccount:${_SCHEDULER_SERVICE_ACCOUNT}" in step["args"]
    substitutions = module.locals["build_substitutions"]
    assert expression(substitutions["_SCHEDULER_SERVICE_ACCOUNT"]) == (
        "google_service_account.scheduler.email"
    )
    # The deployer may read and set that service's policy (gcloud reads the function first).
    role = module.resources[("google_project_iam_custom_role", "invoker_policy_admin")]
    assert {"run.services.getIamPolicy", "run.services.setIamPolicy"} <= set(role["permissions"])
    grant = module.resources[("google_project_iam_member", "deployer_redrive_invoker_policy")]
    assert expression(grant["role"]) == "google_project_iam_custom_role.invoker_policy_admin.id"


def test_the_applier_may_act_as_the_scheduler_account_only(module: Module) -> None:
    grant = module.resources[("google_service_account_iam_member", "applier_acts_as_scheduler")]
    assert expression(grant["service_account_id"]) == "google_service_account.scheduler.name"
    assert grant["role"] == "roles/iam.serviceAccountUser"
    assert expression(grant["member"]) == "local.applier_member"
    assert ("google_client_openid_userinfo", "applier") in module.data
    member = str(module.locals["applier_member"])
    assert '"serviceAccount:${local.applier_email}"' in member
    assert '"user:${local.applier_email}"' in member
    assert 'endswith(local.applier_email, ".gserviceaccount.com")' in member
    job = module.resources[("google_cloud_scheduler_job", "redrive")]
    assert "google_service_account_iam_member.applier_acts_as_scheduler" in {
        expression(dependency) for dependency in job["depends_on"]
    }
    # The applier gets actAs on no other account through this module.
    acts_as = [
        name
        for (kind, name), body in module.resources.items()
        if kind == "google_service_account_iam_member"
        and expression(body["member"]) == "local.applier_member"
    ]
    assert acts_as == ["applier_acts_as_scheduler"]


def test_the_scheduler_jobs_own_failures_raise_an_alert(module: Module) -> None:
    policy = module.resources[("google_monitoring_alert_policy", "redrive_scheduler_failures")]
    (condition,) = policy["conditions"]
    (matched,) = condition["condition_matched_log"]
    log_filter = str(matched["filter"]).replace('\\"', '"')
    assert 'resource.type="cloud_scheduler_job"' in log_filter
    assert 'resource.labels.job_id="${google_cloud_scheduler_job.redrive.name}"' in log_filter
    assert "severity>=ERROR" in log_filter
    assert expression(policy["notification_channels"]) == "local.notification_channels"


def test_the_scheduler_job_posts_to_the_redrive_url_with_an_oidc_token(module: Module) -> None:
    job = module.resources[("google_cloud_scheduler_job", "redrive")]
    (target,) = job["http_target"]
    (oidc,) = target["oidc_token"]
    assert (target["http_method"], expression(target["uri"])) == ("POST", "local.redrive_url")
    assert expression(oidc["service_account_email"]) == "google_service_account.scheduler.email"
    assert expression(oidc["audience"]) == "local.redrive_url"
    assert "oauth_token" not in target
    assert expression(job["schedule"]) == "var.redrive_schedule"
    assert module.variables["redrive_schedule"]["default"] == "*/5 * * * *"
    assert module.locals["redrive_url"] == (
        "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.redrive_function_name}"
    )
    # Scheduler waits longer than the function may run.
    assert "var.redrive_timeout_seconds + 20" in str(job["attempt_deadline"])


def test_the_redrive_identity_has_only_what_a_pass_needs(module: Module) -> None:
    assert _grants_to(module, REDRIVE) == {
        # The receiver's own no-delete Firestore role: read records, mark them published.
        ("google_project_iam_member", "${google_project_iam_custom_role.runtime_firestore.id}"),
        ("google_project_iam_member", "roles/logging.logWriter"),
        ("google_pubsub_topic_iam_member", "roles/pubsub.publisher"),
    }
    firestore = module.resources[("google_project_iam_member", "redrive_firestore")]
    assert "databases/${local.firestore_database}" in _condition(firestore)


def test_the_deployer_roles_for_the_redrive_name_the_redrive_only(module: Module) -> None:
    functions = _condition(
        module.resources[("google_project_iam_member", "deployer_redrive_function")]
    )
    assert 'resource.name == "${local.redrive_function_resource_name}"' in functions
    invoker = _condition(
        module.resources[("google_project_iam_member", "deployer_redrive_invoker_policy")]
    )
    assert 'resource.name == "${local.redrive_function_resource_name}"' in invoker
    assert 'resource.name == "${local.redrive_run_service_resource_name}"' in invoker


def test_redrive_variables_default_to_the_codes_defaults(module: Module) -> None:
    fields = {str(info.alias): info for info in RedriveSettings.model_fields.values()}
    for alias, variable in REDRIVE_SETTING_VARIABLES.items():
        assert module.variables[variable]["default"] == plain_default(fields[alias].default)


def test_the_redrive_deploy_is_private_and_runs_the_redrive_entry_point(
    redrive_args: list[str],
) -> None:
    assert redrive_args[:3] == ["functions", "deploy", "${_REDRIVE_FUNCTION_NAME}"]
    for flag in (
        "--gen2",
        "--trigger-http",
        "--no-allow-unauthenticated",
        "--source=.",
        "--entry-point=redrive",
        "--runtime=python313",
        "--quiet",
    ):
        assert flag in redrive_args
    assert "--allow-unauthenticated" not in redrive_args
    assert validator.flag_values(redrive_args, "--set-secrets") == []  # no key material
    assert validator.flag_values(redrive_args, "--service-account") == [
        "${_REDRIVE_SERVICE_ACCOUNT}"
    ]
    assert validator.flag_values(redrive_args, "--timeout") == ["${_REDRIVE_TIMEOUT}"]


def test_the_redrive_deploy_sets_exactly_settings_the_redrive_reads(
    redrive_args: list[str], module: Module
) -> None:
    (env_flag,) = validator.flag_values(redrive_args, "--set-env-vars")
    env = validator.parse_gcloud_dict(env_flag)
    aliases = {str(info.alias): info for info in RedriveSettings.model_fields.values()}
    assert set(env) - set(aliases) == set()
    required = {alias for alias, info in aliases.items() if info.is_required()}
    assert required <= set(env)
    assert set(REDRIVE_SETTING_VARIABLES) <= set(env)
    substitutions = module.locals["build_substitutions"]
    for alias, value in env.items():
        if alias == "GOOGLE_CLOUD_PROJECT":
            assert value == "$PROJECT_ID"
            continue
        match = re.fullmatch(r"\$\{(_[A-Z0-9_]+)\}", value)
        assert match, f"{alias} should come from one substitution"
        if alias in REDRIVE_SETTING_VARIABLES:
            assert f"var.{REDRIVE_SETTING_VARIABLES[alias]}" in str(substitutions[match.group(1)])


def test_the_redrive_substitution_defaults_match_the_code(config: dict[str, Any]) -> None:
    defined = validator.defined_substitutions(config)
    fields = {str(info.alias): info for info in RedriveSettings.model_fields.values()}
    for alias in REDRIVE_SETTING_VARIABLES:
        assert defined[f"_{alias}"] == str(fields[alias].default)


def test_gcloud_accepts_the_redrive_deploy_command_line(
    config: dict[str, Any], redrive_args: list[str]
) -> None:
    samples = {
        **validator.defined_substitutions(config),
        "_REDRIVE_SERVICE_ACCOUNT": "p0-redrive@my-project.iam.gserviceaccount.com",
        "_BUILD_SERVICE_ACCOUNT": (
            "projects/my-project/serviceAccounts/p0-fn-build@my-project.iam.gserviceaccount.com"
        ),
        "PROJECT_ID": "my-project",
    }
    line = [
        re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: samples[m.group(1) or m.group(2)], argument)
        for argument in redrive_args
    ]
    parsed, stderr = _gcloud_parses(line)
    assert parsed, stderr
    misspelled = [arg.replace("--no-allow-unauthenticated", "--no-allow-unauth") for arg in line]
    assert not _gcloud_parses(misspelled)[0]


def test_both_functions_are_smoke_checked_after_their_deploys(config: dict[str, Any]) -> None:
    smoke = validator.step_by_id(config, "smoke-redrive")
    assert smoke["waitFor"] == ["deploy-redrive"]
    script = smoke["args"][-1]
    assert "401|403)" in script
    assert "cloudfunctions.net" in script
    assert "FUNCTION_NAME=${_REDRIVE_FUNCTION_NAME}" in smoke["env"]
    # No credentials are sent: the answer is Google's front end refusing a stranger.
    assert "Authorization" not in script
    assert "print-identity-token" not in script
    deploy = validator.step_by_id(config, "deploy-redrive")
    assert {"test", "preflight"} <= set(deploy["waitFor"])
    assert validator.step_by_id(config, "smoke")["waitFor"] == ["deploy"]


def _redrive_command_line(config: dict[str, Any], redrive_args: list[str]) -> list[str]:
    samples = {
        **validator.defined_substitutions(config),
        "_REDRIVE_SERVICE_ACCOUNT": "p0-redrive@my-project.iam.gserviceaccount.com",
        "_BUILD_SERVICE_ACCOUNT": (
            "projects/my-project/serviceAccounts/p0-fn-build@my-project.iam.gserviceaccount.com"
        ),
        "PROJECT_ID": "my-project",
    }
    return [
        re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: samples[m.group(1) or m.group(2)], argument)
        for argument in redrive_args
    ]


@pytest.fixture(scope="module")
def deployed_redrive(
    config: dict[str, Any], redrive_args: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Recorded]:
    """The redrive step's gcloud, from a copy of the build workspace, against the local mock."""
    with gcloud_deploy_against_mock(
        _redrive_command_line(config, redrive_args), tmp_path_factory.mktemp("deploy-redrive")
    ) as recorded:
        yield recorded


def test_gcloud_asks_for_a_private_redrive_function_from_the_same_source(
    deployed_redrive: Recorded, redrive_args: list[str]
) -> None:
    function = deployed_redrive.function
    assert function, deployed_redrive.requests
    assert function["buildConfig"]["entryPoint"] == "redrive"
    service = function["serviceConfig"]
    assert "secretEnvironmentVariables" not in service
    (env_flag,) = validator.flag_values(redrive_args, "--set-env-vars")
    assert set(service["environmentVariables"]) == set(validator.parse_gcloud_dict(env_flag))
    assert service["serviceAccountEmail"].startswith("p0-redrive@")
    assert (service["maxInstanceCount"], service["timeoutSeconds"]) == (1, 300)
    with zipfile.ZipFile(io.BytesIO(deployed_redrive.source_zip)) as archive:
        files = {name for name in archive.namelist() if not name.endswith("/")}
    assert "main.py" in files
    assert "src/p0_receiver/usecases/repair.py" in files


def test_the_redrive_alert_matches_the_lines_the_redrive_writes(module: Module) -> None:
    policy = module.resources[("google_monitoring_alert_policy", "redrive_problems")]
    (condition,) = policy["conditions"]
    (matched,) = condition["condition_matched_log"]
    log_filter = str(matched["filter"]).replace('\\"', '"')
    assert 'resource.labels.service_name="${local.redrive_function_name}"' in log_filter
    edge = "".join(
        (ROOT / "src" / "p0_receiver" / "entrypoints" / name).read_text(encoding="utf-8")
        for name in ("redrive.py", "http.py")
    )
    for event in ("p0_redrive_integrity_failed", "p0_internal_error"):
        assert f'"{event}"' in log_filter
        assert f'"{event}"' in edge  # the line the code writes, at severity ERROR
    assert "severity>=ERROR" in log_filter


def test_gcloud_adds_the_scheduler_to_the_redrive_services_own_invoker_policy(
    config: dict[str, Any], tmp_path: Path
) -> None:
    """The grant step's own gcloud against the mock: it finds the function's Cloud Run service,
    reads that service's policy and writes it back with the scheduler added, other bindings and
    the etag kept."""
    samples = {
        **validator.defined_substitutions(config),
        "_SCHEDULER_SERVICE_ACCOUNT": "p0-scheduler@my-project.iam.gserviceaccount.com",
        "PROJECT_ID": "my-project",
    }
    step = validator.step_by_id(config, "grant-redrive-invoker")
    line = [
        re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: samples[m.group(1) or m.group(2)], argument)
        for argument in validator.gcloud_args(step)
    ]
    region, name = samples["_REGION"], samples["_REDRIVE_FUNCTION_NAME"]
    service = f"projects/my-project/locations/{region}/services/{name}"
    existing = {
        "role": "roles/run.invoker",
        "members": ["serviceAccount:x@y.iam.gserviceaccount.com"],
    }
    written: list[dict[str, Any]] = []

    def route(request: MockRequest) -> Answer:
        if request.method == "GET" and request.path.endswith(f"/functions/{name}"):
            function = f"projects/my-project/locations/{region}/functions/{name}"
            return 200, {
                "name": function,
                "environment": "GEN_2",
                "serviceConfig": {"service": service},
            }
        if request.path == f"/v1/{service}:getIamPolicy":
            return 200, {"etag": "BwYQ", "bindings": [existing]}
        if request.method == "POST" and request.path == f"/v1/{service}:setIamPolicy":
            written.append(json.loads(request.body)["policy"])
            return 200, written[-1]
        return STOP

    requests: list[tuple[str, str]] = []
    with gcloud_against_mock(
        line,
        cwd=tmp_path,
        scratch=tmp_path,
        route=route,
        endpoints=lambda url: {
            f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}": f"{url}/" for api in ("CLOUDFUNCTIONS", "RUN")
        },
        requests=requests,
    ):
        pass
    assert written == [
        {
            "etag": "BwYQ",
            "bindings": [
                {
                    "role": "roles/run.invoker",
                    "members": [
                        "serviceAccount:x@y.iam.gserviceaccount.com",
                        "serviceAccount:p0-scheduler@my-project.iam.gserviceaccount.com",
                    ],
                }
            ],
        }
    ], requests
    # Only that one service's policy is touched: no project-level policy call.
    assert not [path for _, path in requests if "/v1/projects/my-project:" in path]
