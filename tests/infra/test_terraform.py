"""Structural checks of the root module in terraform/ (no provider needed: parsed HCL)."""

from __future__ import annotations

import re

import pytest

pytest.importorskip(
    "hcl2", reason="python-hcl2 is not installed (pip install -r requirements-infra.txt)"
)
pytest.importorskip(
    "yaml", reason="PyYAML is not installed (pip install -r requirements-infra.txt)"
)

from p0_receiver.queries import (
    AUDIT_TTL_FIELD,
    TOKEN_LEDGER_TTL_FIELD,
    UNINDEXED_FIELDS,
    Direction,
    IndexSpec,
    required_indexes,
)
from p0_receiver.settings import Settings
from tests.infra.terraform_model import (
    CLOUDBUILD,
    ROOT,
    Module,
    expression,
    load_cloudbuild_validator,
    load_module,
    walk,
)
from tests.infra.upload_sets import BUILD_IGNORE_FILE

pytestmark = pytest.mark.infra

BASIC_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}

# How each setting the code reads reaches the function. Every Settings alias must appear in
# exactly one of these, so a new setting forces a decision here.
SETTING_VARIABLES = {
    "GOOGLE_CLOUD_PROJECT": "project_id",
    "P0_JWT_ISSUER": "p0_jwt_issuer",
    "P0_JWT_AUDIENCE": "p0_jwt_audience",
    "P0_JWT_SUBJECT": "p0_jwt_subject",
    "P0_JWT_LEEWAY_SECONDS": "p0_jwt_leeway_seconds",
    "P0_JWT_MAX_LIFETIME_SECONDS": "p0_jwt_max_lifetime_seconds",
    "P0_REJECT_UNKNOWN_EVENT_TYPES": "p0_reject_unknown_event_types",
    "FIRESTORE_DATABASE": "firestore_database",
    "FIRESTORE_COLLECTION": "firestore_collection",
    "FIRESTORE_TOKEN_COLLECTION": "firestore_token_collection",
    "MAX_BODY_BYTES": "max_body_bytes",
    "AUDIT_RETENTION_DAYS": "audit_retention_days",
    "FIRESTORE_TIMEOUT_SECONDS": "firestore_timeout_seconds",
    "PUBSUB_PUBLISH_TIMEOUT_SECONDS": "pubsub_publish_timeout_seconds",
    "RETRY_AFTER_SECONDS": "retry_after_seconds",
}
SETTINGS_FROM_RESOURCES = {
    "PUBSUB_TOPIC": "google_pubsub_topic.events",
    "P0_PUBLIC_KEYS": "google_secret_manager_secret.p0_public_keys",
}
SETTINGS_NOT_DEPLOYED = {
    # The deploy injects the key as P0_PUBLIC_KEYS; the file form is for local runs.
    "P0_PUBLIC_KEYS_FILE",
}
# Defaults that differ from the code's on purpose: the code defaults to "(default)", the
# module to a dedicated database so IAM can be scoped to it.
DEFAULTS_DIFFERENT_ON_PURPOSE = {"FIRESTORE_DATABASE"}

DESIGN_RESOURCES = {
    ("google_project_service", "enabled"),
    ("google_service_account", "runtime"),
    ("google_service_account", "deployer"),
    ("google_service_account", "function_builder"),
    ("google_project_iam_member", "runtime_firestore"),
    ("google_project_iam_member", "runtime_log_writer"),
    ("google_pubsub_topic_iam_member", "runtime_publisher"),
    ("google_secret_manager_secret_iam_member", "runtime_key_accessor"),
    ("google_pubsub_topic", "events"),
    ("google_pubsub_topic", "dead_letter"),
    ("google_pubsub_subscription", "dead_letter"),
    ("google_pubsub_subscription", "example"),
    ("google_pubsub_topic_iam_member", "pubsub_agent_dead_letter_publisher"),
    ("google_pubsub_subscription_iam_member", "pubsub_agent_example_subscriber"),
    ("google_pubsub_subscription", "bigquery"),
    ("google_bigquery_table", "events"),
    ("google_firestore_database", "audit"),
    ("google_firestore_index", "audit"),
    ("google_firestore_field", "audit_unindexed"),
    ("google_firestore_field", "audit_ttl"),
    ("google_firestore_field", "token_ledger_ttl"),
    ("google_secret_manager_secret", "p0_public_keys"),
    ("google_logging_metric", "rejections"),
    ("google_logging_metric", "publish_failures"),
    ("google_logging_metric", "unavailable"),
    ("google_logging_metric", "token_replays"),
    ("google_monitoring_alert_policy", "delivery_failures"),
    ("google_monitoring_alert_policy", "token_replay"),
    ("google_monitoring_alert_policy", "rejections"),
    ("google_monitoring_notification_channel", "email"),
    ("google_cloudbuild_trigger", "deploy"),
    ("google_storage_bucket", "build_sources"),
}
DESIGN_OUTPUTS = {
    "webhook_url",
    "function_name",
    "pubsub_topic",
    "firestore_database",
    "firestore_collection",
    "firestore_token_collection",
    "p0_public_keys_secret",
    "runtime_service_account",
    "deployer_service_account",
    "cloud_build_substitutions",
    "deploy_command",
}


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def _settings_aliases() -> dict[str, object]:
    return {
        str(info.alias): (None if info.is_required() else info.default)
        for info in Settings.model_fields.values()
    }


def _single_block(body: dict[str, object], name: str) -> dict[str, object]:
    blocks = body.get(name)
    assert isinstance(blocks, list), f"missing block {name}"
    assert len(blocks) == 1, f"expected one {name} block"
    block = blocks[0]
    assert isinstance(block, dict)
    return block


def test_every_resource_the_design_needs_exists(module: Module) -> None:
    assert DESIGN_RESOURCES - set(module.resources) == set()
    assert DESIGN_OUTPUTS - set(module.outputs) == set()


def test_the_function_has_one_owner_cloud_build(module: Module) -> None:
    owned_by_cloud_build = {
        "google_cloudfunctions2_function",
        "google_cloudfunctions_function",
        "google_cloud_run_v2_service",
        "google_cloud_run_service",
    }
    assert {kind for kind, _ in module.resources} & owned_by_cloud_build == set()


def test_no_basic_roles_anywhere(module: Module) -> None:
    found = [
        f"{kind}.{name}: {path}"
        for (kind, name), body in module.resources.items()
        for path, value in walk(body)
        if isinstance(value, str) and value in BASIC_ROLES
    ]
    assert found == []
    for text in module.texts.values():
        assert re.search(r'"roles/(owner|editor|viewer)"', text) is None


def test_publisher_and_secret_accessor_are_granted_on_the_resource_only(module: Module) -> None:
    scoped = {
        "roles/pubsub.publisher": {"google_pubsub_topic_iam_member"},
        "roles/pubsub.subscriber": {"google_pubsub_subscription_iam_member"},
        "roles/secretmanager.secretAccessor": {"google_secret_manager_secret_iam_member"},
    }
    for (kind, name), body in module.resources.items():
        role = body.get("role")
        if role in scoped:
            assert kind in scoped[role], f"{kind}.{name} grants {role} beyond one resource"

    publisher = module.resources[("google_pubsub_topic_iam_member", "runtime_publisher")]
    assert expression(publisher["topic"]) == "google_pubsub_topic.events.name"
    assert expression(publisher["member"]) == "google_service_account.runtime.member"
    accessor = module.resources[("google_secret_manager_secret_iam_member", "runtime_key_accessor")]
    assert expression(accessor["secret_id"]) == (
        "google_secret_manager_secret.p0_public_keys.secret_id"
    )
    assert accessor["role"] == "roles/secretmanager.secretAccessor"


def test_runtime_identity_has_only_what_the_function_needs(module: Module) -> None:
    grants = {
        (kind, body["role"])
        for (kind, _), body in module.resources.items()
        if "role" in body
        and "member" in body
        and expression(body["member"]) == "google_service_account.runtime.member"
    }
    assert grants == {
        ("google_project_iam_member", "roles/datastore.user"),
        ("google_project_iam_member", "roles/logging.logWriter"),
        ("google_pubsub_topic_iam_member", "roles/pubsub.publisher"),
        ("google_secret_manager_secret_iam_member", "roles/secretmanager.secretAccessor"),
    }
    firestore = module.resources[("google_project_iam_member", "runtime_firestore")]
    condition = _single_block(firestore, "condition")
    assert "databases/${local.firestore_database}" in str(condition["expression"])


def test_deployer_acts_only_as_the_function_identities(module: Module) -> None:
    acts_as = {
        expression(body["service_account_id"])
        for (kind, _), body in module.resources.items()
        if kind == "google_service_account_iam_member"
        and expression(body["member"]) == "google_service_account.deployer.member"
    }
    assert acts_as == {
        "google_service_account.runtime.name",
        "google_service_account.function_builder.name",
    }
    project_roles = {
        body["role"]
        for (kind, _), body in module.resources.items()
        if kind == "google_project_iam_member"
        and expression(body["member"]) == "google_service_account.deployer.member"
    }
    assert "roles/cloudfunctions.admin" not in project_roles
    assert "roles/run.admin" not in project_roles
    assert "roles/iam.serviceAccountUser" not in project_roles


def test_composite_indexes_are_exactly_the_query_catalogues(module: Module) -> None:
    declared = {
        IndexSpec(tuple((f["field_path"], Direction(f["order"])) for f in fields))
        for fields in module.locals["audit_composite_indexes"].values()
    }
    assert declared == set(required_indexes())
    assert len(module.locals["audit_composite_indexes"]) == len(required_indexes())

    index = module.resources[("google_firestore_index", "audit")]
    assert expression(index["for_each"]) == "local.audit_composite_indexes"
    assert expression(index["collection"]) == "var.firestore_collection"
    assert index["query_scope"] == "COLLECTION"
    assert module.resources_of("google_firestore_index").keys() == {"audit"}


def test_ttl_fields_match_the_record(module: Module) -> None:
    assert module.locals["audit_ttl_field"] == AUDIT_TTL_FIELD
    assert module.locals["token_ledger_ttl_field"] == TOKEN_LEDGER_TTL_FIELD

    audit = module.resources[("google_firestore_field", "audit_ttl")]
    assert expression(audit["collection"]) == "var.firestore_collection"
    assert expression(audit["field"]) == "local.audit_ttl_field"
    assert audit["ttl_config"] == [{}]

    ledger = module.resources[("google_firestore_field", "token_ledger_ttl")]
    assert expression(ledger["collection"]) == "var.firestore_token_collection"
    assert expression(ledger["field"]) == "local.token_ledger_ttl_field"
    assert ledger["ttl_config"] == [{}]


def test_unindexed_fields_are_exempt_from_single_field_indexes(module: Module) -> None:
    assert sorted(module.locals["audit_unindexed_fields"]) == sorted(UNINDEXED_FIELDS)
    exempt = module.resources[("google_firestore_field", "audit_unindexed")]
    assert expression(exempt["for_each"]) == "toset(local.audit_unindexed_fields)"
    assert expression(exempt["collection"]) == "var.firestore_collection"
    assert exempt["index_config"] == [{}]


def test_firestore_database_is_native_protected_and_recoverable(module: Module) -> None:
    database = module.resources[("google_firestore_database", "audit")]
    assert database["type"] == "FIRESTORE_NATIVE"
    assert database["delete_protection_state"] == "DELETE_PROTECTION_ENABLED"
    assert database["point_in_time_recovery_enablement"] == "POINT_IN_TIME_RECOVERY_ENABLED"
    assert database["deletion_policy"] == "ABANDON"


def test_topic_and_example_subscription(module: Module) -> None:
    topic = module.resources[("google_pubsub_topic", "events")]
    assert expression(topic["message_retention_duration"]) == "var.topic_message_retention"

    example = module.resources[("google_pubsub_subscription", "example")]
    assert str(example["filter"]).startswith("attributes.eventType = ")
    retry = _single_block(example, "retry_policy")
    assert {"minimum_backoff", "maximum_backoff"} <= retry.keys()
    dead_letter = _single_block(example, "dead_letter_policy")
    assert expression(dead_letter["dead_letter_topic"]) == "google_pubsub_topic.dead_letter.id"

    agent_publisher = module.resources[
        ("google_pubsub_topic_iam_member", "pubsub_agent_dead_letter_publisher")
    ]
    assert expression(agent_publisher["topic"]) == "google_pubsub_topic.dead_letter.name"
    assert expression(agent_publisher["member"]) == "local.pubsub_service_agent"
    assert "gcp-sa-pubsub.iam.gserviceaccount.com" in module.locals["pubsub_service_agent"]
    agent_subscriber = module.resources[
        ("google_pubsub_subscription_iam_member", "pubsub_agent_example_subscriber")
    ]
    assert agent_subscriber["role"] == "roles/pubsub.subscriber"


def test_bigquery_subscription_is_optional_and_off_by_default(module: Module) -> None:
    assert module.variables["enable_bigquery_subscription"]["default"] is False
    assert module.variables["enable_build_trigger"]["default"] is False
    for kind, name in [
        ("google_bigquery_dataset", "events"),
        ("google_bigquery_table", "events"),
        ("google_pubsub_subscription", "bigquery"),
    ]:
        count = expression(module.resources[(kind, name)]["count"])
        assert count == "var.enable_bigquery_subscription ? 1 : 0"


def test_log_metrics_follow_the_log_contract(module: Module) -> None:
    def text(value: object) -> str:
        # Normalise HCL escapes so the checks read like the log filter itself.
        return str(value).replace('\\"', '"')

    assert 'jsonPayload.message="p0_delivery"' in text(module.locals["delivery_log_filter"])
    metrics = module.resources_of("google_logging_metric")
    for name in ("rejections", "publish_failures", "unavailable"):
        assert "${local.delivery_log_filter}" in text(metrics[name]["filter"]), name
    assert 'jsonPayload.outcome="rejected"' in text(metrics["rejections"]["filter"])
    assert metrics["rejections"]["label_extractors"] == {"reason": "EXTRACT(jsonPayload.reason)"}
    assert 'jsonPayload.reason="publish_failed"' in text(metrics["publish_failures"]["filter"])
    assert 'jsonPayload.outcome="unavailable"' in text(metrics["unavailable"]["filter"])
    replay = text(metrics["token_replays"]["filter"])
    assert "severity=ALERT" in replay
    assert 'jsonPayload.message="p0_token_replay"' in replay

    referenced = {
        match
        for body in module.resources_of("google_monitoring_alert_policy").values()
        for _, value in walk(body)
        if isinstance(value, str)
        for match in re.findall(r"google_logging_metric\.(\w+)\.name", value)
    }
    assert referenced == set(metrics)


def test_variables_are_typed_and_documented(module: Module) -> None:
    for name, body in module.variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert len(str(body.get("description", ""))) >= 20, f"variable {name} is undocumented"
    for name, body in module.outputs.items():
        assert body.get("description"), f"output {name} is undocumented"


def test_every_setting_is_accounted_for(module: Module) -> None:
    aliases = set(_settings_aliases())
    accounted = set(SETTING_VARIABLES) | set(SETTINGS_FROM_RESOURCES) | SETTINGS_NOT_DEPLOYED
    assert aliases == accounted
    assert set(SETTING_VARIABLES.values()) <= set(module.variables)


def test_variable_defaults_match_the_settings_defaults(module: Module) -> None:
    defaults = _settings_aliases()
    for alias, variable in SETTING_VARIABLES.items():
        if alias in DEFAULTS_DIFFERENT_ON_PURPOSE:
            continue
        body = module.variables[variable]
        if defaults[alias] is None:
            # Required or unset in the code: no default, or blank (the code reads blank as unset).
            assert body.get("default", "") in ("", None), variable
        else:
            assert body.get("default") == defaults[alias], variable


def test_build_substitutions_agree_with_cloudbuild_and_variables(module: Module) -> None:
    validator = load_cloudbuild_validator()
    config = validator.load_config(CLOUDBUILD)
    substitutions = module.locals["build_substitutions"]
    assert set(substitutions) == set(validator.defined_substitutions(config))

    deploy = validator.step_by_id(config, "deploy")
    (env_flag,) = validator.flag_values(deploy["args"], "--set-env-vars")
    for alias, value in validator.parse_gcloud_dict(env_flag).items():
        if alias == "GOOGLE_CLOUD_PROJECT":
            assert value == "$PROJECT_ID"
            continue
        match = re.fullmatch(r"\$\{(_[A-Z0-9_]+)\}", value)
        assert match, f"{alias} should come from one substitution"
        source = str(substitutions[match.group(1)])
        if alias in SETTING_VARIABLES:
            assert f"var.{SETTING_VARIABLES[alias]}" in source or (
                alias == "FIRESTORE_DATABASE" and "local.audit_database" in source
            ), f"{alias} is fed by {source}"
        else:
            assert SETTINGS_FROM_RESOURCES[alias] in source


def test_webhook_url_is_the_deterministic_gen2_url(module: Module) -> None:
    assert module.locals["webhook_url"] == (
        "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.function_name}"
    )
    assert expression(module.outputs["webhook_url"]["value"]) == "local.webhook_url"


def test_every_checkov_skip_gives_its_reason(module: Module) -> None:
    for file_name, text in module.texts.items():
        for line in text.splitlines():
            if "checkov:skip" in line:
                assert re.search(r"#\s*checkov:skip=[A-Z0-9_]+:\S.{20,}", line), (
                    f"{file_name}: {line.strip()}"
                )


def test_deploy_command_uploads_with_the_build_ignore_file(module: Module) -> None:
    command = str(module.outputs["deploy_command"]["value"])
    assert '"gcloud builds submit ."' in command
    (ignore_file,) = re.findall(r'"--ignore-file=([^"]+)"', command)
    assert ignore_file == BUILD_IGNORE_FILE
    assert (ROOT / ignore_file).is_file()
