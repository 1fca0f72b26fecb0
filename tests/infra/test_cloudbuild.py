"""cloudbuild.yaml: structure, and the deploy's configuration against the code's settings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
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
from tests.infra.test_terraform import plain_default

pytestmark = pytest.mark.infra

validator = load_cloudbuild_validator()


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return validator.load_config(CLOUDBUILD)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def deploy_args(config: dict[str, Any]) -> list[str]:
    return list(validator.gcloud_args(validator.step_by_id(config, "deploy")))


def test_cloudbuild_yaml_has_no_structural_problems(config: dict[str, Any]) -> None:
    assert validator.find_problems(config) == []


def test_deploy_sets_only_settings_the_code_reads(deploy_args: list[str]) -> None:
    aliases = {str(info.alias) for info in Settings.model_fields.values()}
    (env_flag,) = validator.flag_values(deploy_args, "--set-env-vars")
    env = validator.parse_gcloud_dict(env_flag)
    # The key comes from Secret Manager through the script's own --set-secrets.
    assert validator.flag_values(deploy_args, "--set-secrets") == []
    secrets = {"P0_PUBLIC_KEYS"}

    assert set(env) - aliases == set()
    assert secrets - aliases == set()
    assert set(env) & secrets == set()

    deployed = set(env) | secrets
    required = {str(info.alias) for info in Settings.model_fields.values() if info.is_required()}
    assert required <= deployed
    assert {"GOOGLE_CLOUD_PROJECT", "PUBSUB_TOPIC"} <= set(env)
    assert "P0_PUBLIC_KEYS_FILE" not in deployed


def test_deploy_pins_the_key_version_the_preflight_resolved(config: dict[str, Any]) -> None:
    preflight = validator.step_by_id(config, "preflight")
    deploy = validator.step_by_id(config, "deploy")
    preflight_script = preflight["args"][-1]
    deploy_script = deploy["args"][deploy["args"].index("-c") + 1]
    state = "/deploy-state/p0-key-version"
    assert "--filter=state:ENABLED --sort-by=~createTime --limit=1" in preflight_script
    assert f"> {state}" in preflight_script
    assert f'version="$$(cat {state})"' in deploy_script
    assert '--set-secrets="P0_PUBLIC_KEYS=$${P0_PUBLIC_KEYS_SECRET}:$${version}"' in deploy_script
    assert "latest" not in deploy_script
    assert "P0_PUBLIC_KEYS_SECRET=${_P0_PUBLIC_KEYS_SECRET}" in deploy["env"]
    # The version travels in a volume of these two steps, never in the uploaded workspace.
    for step in (preflight, deploy):
        assert step["volumes"] == [{"name": "deploy-state", "path": "/deploy-state"}]
    assert "deploy-state" not in str(config.get("options", {}))


def test_every_deployed_setting_comes_from_its_own_substitution(deploy_args: list[str]) -> None:
    (env_flag,) = validator.flag_values(deploy_args, "--set-env-vars")
    for name, value in validator.parse_gcloud_dict(env_flag).items():
        expected = "$PROJECT_ID" if name == "GOOGLE_CLOUD_PROJECT" else f"${{_{name}}}"
        assert value == expected


def test_substitution_defaults_match_the_settings_defaults(config: dict[str, Any]) -> None:
    defaults: dict[str, object] = {
        str(info.alias): plain_default(info.default)
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
    assert "--cpu" not in deploy_args
    assert validator.flag_values(deploy_args, "--cpu") == ["${_CPU}"]
    for flag in (
        "--gen2",
        "--trigger-http",
        "--allow-unauthenticated",
        "--source=.",
        "--entry-point=receive",
        "--runtime=python313",
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
    assert text.count("- --allow-unauthenticated") == 1
    assert "Authorization" in comment
    assert "JWT" in comment


def _longest_chain(config: dict[str, Any]) -> tuple[int, list[str]]:
    """Seconds and step ids of the slowest chain of step timeouts through waitFor."""
    all_steps = validator.steps(config)
    finish: dict[str, tuple[int, list[str]]] = {}
    for index, step in enumerate(all_steps):
        wait_for = step.get("waitFor")
        if wait_for is None:  # Cloud Build's default: every earlier step.
            before = [str(s["id"]) for s in all_steps[:index]]
        else:
            before = [w for w in wait_for if w != "-"]
        start = max((finish[w] for w in before), default=(0, []))
        seconds = int(str(step["timeout"]).removesuffix("s"))
        finish[str(step["id"])] = (start[0] + seconds, [*start[1], str(step["id"])])
    return max(finish.values())


def test_the_build_timeout_covers_its_slowest_chain_of_steps(config: dict[str, Any]) -> None:
    assert all("timeout" in step for step in validator.steps(config))
    seconds, chain = _longest_chain(config)
    build_timeout = int(str(config["timeout"]).removesuffix("s"))
    assert seconds <= build_timeout, f"{chain} may take {seconds}s > {build_timeout}s"
    # A too-tight build timeout would cut the deploy; a far looser one hides a hang.
    assert build_timeout - seconds <= 600


def test_the_google_cloud_cli_is_one_pinned_version(config: dict[str, Any]) -> None:
    images = {str(step["name"]) for step in validator.steps(config)}
    cli_images = {image for image in images if "google-cloud-cli" in image}
    versions = {re.fullmatch(r".*google-cloud-cli:(\d+\.\d+\.\d+)-slim", i) for i in cli_images}
    assert None not in versions, cli_images
    (version,) = {match.group(1) for match in versions if match}
    test = validator.step_by_id(config, "test")
    assert f"GCLOUD_VERSION={version}-0" in test["env"]
    script = test["args"][-1]
    for package in (
        "google-cloud-cli",
        "google-cloud-cli-firestore-emulator",
        "google-cloud-cli-pubsub-emulator",
    ):
        assert f'"{package}=$$GCLOUD_VERSION"' in script
    # The emulator packages depend on a full JDK; the headless JRE alone would not satisfy them.
    assert "openjdk-17-jdk" in script
    assert "jre-headless" not in script


def test_terraform_style_substitutions_pass_gclouds_own_parser(config: dict[str, Any]) -> None:
    values = dict(validator.defined_substitutions(config))
    values["_P0_JWT_ALGORITHMS"] = "ES256,EdDSA"  # a comma inside a value
    flag = "^;^" + ";".join(f"{key}={value}" for key, value in sorted(values.items()))
    parsed, stderr = _gcloud_parses(
        [
            "builds",
            "submit",
            "--no-source",
            f"--config={CLOUDBUILD}",
            "--project=offline-parse-check",
            f"--substitutions={flag}",
        ]
    )
    assert parsed, stderr
    # The plain comma-separated form would split the algorithm list and fail.
    plain = ",".join(f"{key}={value}" for key, value in sorted(values.items()))
    assert not _gcloud_parses(
        ["builds", "submit", "--no-source", f"--config={CLOUDBUILD}", f"--substitutions={plain}"]
    )[0]


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


def test_gcloud_args_of_a_bash_step_are_those_after_the_script() -> None:
    step = {
        "id": "d",
        "entrypoint": "bash",
        "args": ["-euo", "pipefail", "-c", 'exec gcloud "$$@" --x=1', "d", "functions", "list"],
    }
    assert validator.gcloud_args(step) == ["functions", "list"]
    assert validator.gcloud_args({"entrypoint": "gcloud", "args": ["a"]}) == ["a"]
    with pytest.raises(ValueError, match="does not hand its arguments to gcloud"):
        validator.gcloud_args({"id": "x", "entrypoint": "bash", "args": ["-c", "echo"]})


def _gcloud_parses(arguments: list[str]) -> tuple[bool, str]:
    """Whether gcloud's own argument parser accepts a command line (offline: with no account
    configured, a command that parsed stops at the account check)."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        pytest.skip("the Google Cloud CLI is not installed")
    with tempfile.TemporaryDirectory() as gcloud_config:
        answer = subprocess.run(
            [gcloud, *arguments],
            capture_output=True,
            text=True,
            check=False,
            env={
                "PATH": os.environ.get("PATH", ""),
                "CLOUDSDK_CONFIG": gcloud_config,
                "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
                "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
            },
        )
    return "You do not currently have an active account selected" in answer.stderr, answer.stderr


def deploy_command_line(config: dict[str, Any]) -> list[str]:
    """The deploy step's gcloud arguments as Cloud Build would pass them, with sample values."""
    samples = {
        **validator.defined_substitutions(config),
        "_RUNTIME_SERVICE_ACCOUNT": "p0-receiver@my-project.iam.gserviceaccount.com",
        "_BUILD_SERVICE_ACCOUNT": (
            "projects/my-project/serviceAccounts/p0-fn-build@my-project.iam.gserviceaccount.com"
        ),
        "_P0_JWT_ALGORITHMS": "ES256,EdDSA",
        "PROJECT_ID": "my-project",
    }

    def substitute(argument: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: samples[m.group(1) or m.group(2)], argument)

    deploy = validator.step_by_id(config, "deploy")
    # What the step's script appends, with the version the preflight pinned.
    pinned = f"--set-secrets=P0_PUBLIC_KEYS={samples['_P0_PUBLIC_KEYS_SECRET']}:3"
    return [*(substitute(arg) for arg in validator.gcloud_args(deploy)), pinned]


def test_gcloud_accepts_the_deploy_command_line(config: dict[str, Any]) -> None:
    parsed, stderr = _gcloud_parses(deploy_command_line(config))
    assert parsed, stderr


def test_gcloud_parse_check_rejects_a_misspelled_flag(config: dict[str, Any]) -> None:
    arguments = [
        arg.replace("--ingress-settings", "--ingres-settings")
        for arg in deploy_command_line(config)
    ]
    parsed, _ = _gcloud_parses(arguments)
    assert not parsed
