"""cloudbuild.yaml: structure, and the deploy's configuration against the code's settings."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip(
    "hcl2", reason="python-hcl2 is not installed (pip install -r requirements-infra.txt)"
)
pytest.importorskip(
    "yaml", reason="PyYAML is not installed (pip install -r requirements-infra.txt)"
)

from p0_receiver.settings import Settings
from tests.infra.terraform_model import CLOUDBUILD, load_cloudbuild_validator

pytestmark = pytest.mark.infra

validator = load_cloudbuild_validator()


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return validator.load_config(CLOUDBUILD)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def deploy_args(config: dict[str, Any]) -> list[str]:
    return list(validator.step_by_id(config, "deploy")["args"])


def test_cloudbuild_yaml_has_no_structural_problems(config: dict[str, Any]) -> None:
    assert validator.find_problems(config) == []


def test_deploy_sets_only_settings_the_code_reads(deploy_args: list[str]) -> None:
    aliases = {str(info.alias) for info in Settings.model_fields.values()}
    (env_flag,) = validator.flag_values(deploy_args, "--set-env-vars")
    (secret_flag,) = validator.flag_values(deploy_args, "--set-secrets")
    env = validator.parse_gcloud_dict(env_flag)
    secrets = validator.parse_gcloud_dict(secret_flag)

    assert set(env) - aliases == set()
    assert set(secrets) - aliases == set()
    assert set(env) & set(secrets) == set()

    deployed = set(env) | set(secrets)
    required = {str(info.alias) for info in Settings.model_fields.values() if info.is_required()}
    assert required <= deployed
    assert {"GOOGLE_CLOUD_PROJECT", "PUBSUB_TOPIC"} <= set(env)
    # Exactly one key source, from Secret Manager.
    assert secrets == {"P0_PUBLIC_KEYS": "${_P0_PUBLIC_KEYS_SECRET}:latest"}
    assert "P0_PUBLIC_KEYS_FILE" not in deployed


def test_every_deployed_setting_comes_from_its_own_substitution(deploy_args: list[str]) -> None:
    (env_flag,) = validator.flag_values(deploy_args, "--set-env-vars")
    for name, value in validator.parse_gcloud_dict(env_flag).items():
        expected = "$PROJECT_ID" if name == "GOOGLE_CLOUD_PROJECT" else f"${{_{name}}}"
        assert value == expected


def test_substitution_defaults_match_the_settings_defaults(config: dict[str, Any]) -> None:
    defaults = {
        str(info.alias): info.default
        for info in Settings.model_fields.values()
        if not info.is_required()
    }
    substitutions = validator.defined_substitutions(config)
    for name, value in substitutions.items():
        alias = name.removeprefix("_")
        if alias not in defaults or alias == "FIRESTORE_DATABASE":
            continue
        default = defaults[alias]
        if default is None:
            assert value == "", name
        elif isinstance(default, bool):
            assert value == str(default).lower(), name
        elif isinstance(default, float) and default.is_integer():
            assert value in (str(default), str(int(default))), name
        else:
            assert value == str(default), name


def test_deploy_flags_lock_down_the_surface(deploy_args: list[str]) -> None:
    assert deploy_args[:3] == ["functions", "deploy", "${_FUNCTION_NAME}"]
    for flag in (
        "--gen2",
        "--trigger-http",
        "--allow-unauthenticated",
        "--source=.",
        "--entry-point=receive",
        "--runtime=python311",
        "--ingress-settings=all",
        "--quiet",
    ):
        assert flag in deploy_args
    for flag, substitution in {
        "--region": "${_REGION}",
        "--service-account": "${_RUNTIME_SERVICE_ACCOUNT}",
        "--build-service-account": "${_BUILD_SERVICE_ACCOUNT}",
        "--max-instances": "${_MAX_INSTANCES}",
        "--concurrency": "${_CONCURRENCY}",
        "--timeout": "${_TIMEOUT}",
        "--memory": "${_MEMORY}",
    }.items():
        assert validator.flag_values(deploy_args, flag) == [substitution], flag


def test_public_invocation_is_explained_where_it_is_granted() -> None:
    text = CLOUDBUILD.read_text(encoding="utf-8")
    comment = text[: text.index("- --allow-unauthenticated")].rsplit("- --trigger-http", 1)[1]
    assert "Authorization" in comment
    assert "JWT" in comment


def test_smoke_check_runs_after_the_deploy_and_expects_401(config: dict[str, Any]) -> None:
    smoke = validator.step_by_id(config, "smoke")
    assert smoke["waitFor"] == ["deploy"]
    script = smoke["args"][-1]
    assert '"401"' in script
    assert "cloudfunctions.net" in script
    deploy = validator.step_by_id(config, "deploy")
    assert {"test", "preflight"} <= set(deploy["waitFor"])


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"steps": []}, "steps: must be a non-empty list"),
        ({"steps": [{"args": ["x"]}]}, "needs a non-empty 'name'"),
        ({"steps": [{"name": "i", "args": "echo hi"}]}, "'args' must be a list of strings"),
        ({"steps": [{"name": "i", "id": "a"}, {"name": "i", "id": "a"}]}, "duplicate id"),
        ({"steps": [{"name": "i", "waitFor": ["later"]}]}, "waitFor 'later'"),
        ({"steps": [{"name": "i", "args": ["${_MISSING}"]}]}, "${_MISSING} is used but not"),
        (
            {"steps": [{"name": "i"}], "substitutions": {"_UNUSED": "x"}},
            "_UNUSED is defined but never used",
        ),
        ({"steps": [{"name": "i", "args": ["echo $(date)"]}]}, "bare or malformed '$'"),
        ({"steps": [{"name": "i", "args": ["$HOME"]}]}, "$HOME is neither a built-in"),
        ({"steps": [{"name": "i", "env": ["NOEQUALS"]}]}, "is not NAME=VALUE"),
    ],
)
def test_validator_reports_what_gcloud_misses(config: dict[str, Any], problem: str) -> None:
    problems = validator.find_problems(config)
    assert any(problem in found for found in problems), problems


def test_validator_accepts_escapes_and_builtins() -> None:
    config = {
        "steps": [
            {"id": "a", "name": "i", "args": ["echo $$HOME $PROJECT_ID ${_X}"]},
            {"name": "i", "waitFor": ["a", "-"]},
        ],
        "substitutions": {"_X": "1"},
    }
    assert validator.find_problems(config) == []


def test_gcloud_dict_parsing_honours_alternate_delimiters() -> None:
    assert validator.parse_gcloud_dict("^;^A=1,2;B=") == {"A": "1,2", "B": ""}
    assert validator.parse_gcloud_dict("A=1,B=2") == {"A": "1", "B": "2"}
    with pytest.raises(ValueError, match="set twice"):
        validator.parse_gcloud_dict("A=1,A=2")
