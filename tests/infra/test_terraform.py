"""Structural checks of the root module in terraform/ (no provider needed: parsed HCL)."""

from __future__ import annotations

import re

import hcl2
import pytest

pytest.importorskip(
    "hcl2", reason="python-hcl2 is not installed (pip install -r requirements-infra.txt)"
)
pytest.importorskip(
    "yaml", reason="PyYAML is not installed (pip install -r requirements-infra.txt)"
)

from p0_receiver.core.quarantine import TOKEN_BOUND_EXPIRE_AT, TOKEN_BOUND_SUFFIX
from p0_receiver.core.queries import (
    AUDIT_EVENT_ID_PREFIX,
    AUDIT_TTL_FIELD,
    QUERY_SHAPES,
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
    "TRACING": "tracing",
    "P0_JWT_ALGORITHMS": "p0_jwt_algorithms",
    "P0_TOKEN_REUSE": "p0_token_reuse",
    "P0_TOKEN_BURST_SECONDS": "p0_token_burst_seconds",
    "FIRESTORE_QUARANTINE_COLLECTION": "firestore_quarantine_collection",
    "QUARANTINE_MAX_PER_TOKEN": "quarantine_max_per_token",
    "QUARANTINE_RETENTION_DAYS": "quarantine_retention_days",
}
SETTINGS_FROM_RESOURCES = {
    "PUBSUB_TOPIC": "google_pubsub_topic.events",
    "P0_PUBLIC_KEYS": "google_secret_manager_secret.p0_public_keys",
}
SETTINGS_NOT_DEPLOYED = {
    # The deploy injects the key as P0_PUBLIC_KEYS; the file form is for local runs.
    "P0_PUBLIC_KEYS_FILE",
    # Access-review thresholds: the deployed receiver decides the on-receipt rules with the
    # defaults until the deploy passes these through (variables, substitutions, cloudbuild.yaml);
    # the operator's report reads them from its own environment.
    "REVIEW_LONG_GRANT_HOURS",
    "REVIEW_FAST_APPROVAL_SECONDS",
    "REVIEW_BUSINESS_HOURS",
    "REVIEW_TIMEZONE",
    "REVIEW_NEVER_ENDED_GRACE_HOURS",
    "REVIEW_AUTOMATIC_APPROVAL_SOURCES",
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
    ("google_firestore_field", "quarantine_ttl"),
    ("google_firestore_field", "quarantine_token_bound_ttl"),
    ("google_project_service_identity", "pubsub"),
    ("google_logging_metric", "quarantined"),
    ("google_logging_metric", "token_reuse_accepted"),
    ("google_logging_metric", "internal_errors"),
    ("google_monitoring_alert_policy", "quarantine"),
    ("google_monitoring_alert_policy", "internal_errors"),
    ("google_monitoring_alert_policy", "key_secret_version_added"),
    ("time_sleep", "log_metrics_queryable"),
    ("google_storage_bucket_object", "deploy_command"),
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
    ("google_storage_bucket", "archive"),
    ("google_storage_bucket_iam_member", "pubsub_agent_archive_reader"),
    ("google_storage_bucket_iam_member", "pubsub_agent_archive_creator"),
    ("google_pubsub_subscription", "archive"),
    ("google_project_iam_audit_config", "firestore_data_writes"),
    ("google_project_iam_custom_role", "runtime_firestore"),
    ("google_logging_metric", "accepted_by_key"),
    ("google_logging_metric", "self_approvals"),
    ("google_monitoring_alert_policy", "self_approval"),
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
    "deploy_command_url",
    "archive_bucket",
    "archive_uri",
    "archive_subscription",
}


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def plain_default(value: object) -> object:
    """A setting's default as the deploy spells it: an enum's value, None for an empty list."""
    value = getattr(value, "value", value)
    if isinstance(value, (str, tuple, list, frozenset, set)) and not value:
        return None
    return value


def _settings_aliases() -> dict[str, object]:
    """Every setting the deploy must account for, with the code's default (None: required or
    unset)."""
    return {
        str(info.alias): (None if info.is_required() else plain_default(info.default))
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
        ("google_project_iam_member", "${google_project_iam_custom_role.runtime_firestore.id}"),
        ("google_project_iam_member", "roles/logging.logWriter"),
        ("google_pubsub_topic_iam_member", "roles/pubsub.publisher"),
        ("google_secret_manager_secret_iam_member", "roles/secretmanager.secretAccessor"),
        ("google_project_iam_member", "roles/cloudtrace.agent"),
    }
    # The trace agent only when tracing is on.
    trace_agent = module.resources[("google_project_iam_member", "runtime_trace_agent")]
    assert expression(trace_agent["count"]) == 'var.tracing == "on" ? 1 : 0'
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
        "google_service_account.redrive.name",
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


def test_shapes_without_a_composite_index_keep_their_single_field_index(module: Module) -> None:
    # A shape with no equality filter (the stats window, the event-id prefix) is served by
    # Firestore's automatic single-field index on its order field alone: an exemption of that
    # field would break it in production only (the emulator never demands indexes).
    single_field = {shape.order_field for shape in QUERY_SHAPES if not shape.indexes()}
    assert AUDIT_EVENT_ID_PREFIX.order_field in single_field
    exempt = {*module.locals["audit_unindexed_fields"], module.locals["audit_ttl_field"]}
    assert not single_field & exempt
    # Those two resources are every field override on the audit collection.
    audit_fields = {
        name
        for name, body in module.resources_of("google_firestore_field").items()
        if expression(body["collection"]) == "var.firestore_collection"
    }
    assert audit_fields == {"audit_unindexed", "audit_ttl"}


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

    quarantine = module.resources[("google_firestore_field", "quarantine_ttl")]
    assert expression(quarantine["collection"]) == "var.firestore_quarantine_collection"
    assert expression(quarantine["field"]) == "local.quarantine_ttl_field"
    assert module.locals["quarantine_ttl_field"] == "expireAt"
    assert quarantine["ttl_config"] == [{}]
    assert quarantine["index_config"] == [{}]

    bound = module.resources[("google_firestore_field", "quarantine_token_bound_ttl")]
    assert bound["collection"] == "${var.firestore_quarantine_collection}" + TOKEN_BOUND_SUFFIX
    assert expression(bound["field"]) == "local.quarantine_ttl_field"
    assert module.locals["quarantine_ttl_field"] == TOKEN_BOUND_EXPIRE_AT
    assert bound["ttl_config"] == [{}]


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
    # The agent is declared (google-beta), so its bindings never precede its existence.
    assert expression(module.locals["pubsub_service_agent"]) == (
        "google_project_service_identity.pubsub.member"
    )
    identity = module.resources[("google_project_service_identity", "pubsub")]
    assert identity["provider"] == "google-beta"
    assert identity["service"] == "pubsub.googleapis.com"
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

    quarantined = text(metrics["quarantined"]["filter"])
    assert 'jsonPayload.message="p0_quarantined"' in quarantined
    assert "severity=WARNING" in quarantined
    assert metrics["quarantined"]["label_extractors"] == {"reason": "EXTRACT(jsonPayload.reason)"}
    reuse = text(metrics["token_reuse_accepted"]["filter"])
    assert 'jsonPayload.message="p0_token_reuse_accepted"' in reuse
    assert "severity=WARNING" in reuse
    self_approvals = text(metrics["self_approvals"]["filter"])
    assert "${local.delivery_log_filter}" in self_approvals
    assert 'jsonPayload.outcome="accepted"' in self_approvals
    assert 'jsonPayload.findings:"self-approval"' in self_approvals
    internal = text(metrics["internal_errors"]["filter"])
    assert 'jsonPayload.message="p0_internal_error"' in internal
    assert "severity=ERROR" in internal

    # Policies name metrics only through the time_sleep that waits for them to be queryable.
    sleep = module.resources[("time_sleep", "log_metrics_queryable")]
    triggers = {key: expression(value) for key, value in sleep["triggers"].items()}
    assert triggers == {name: f"google_logging_metric.{name}.name" for name in triggers}
    policies = module.resources_of("google_monitoring_alert_policy")
    policy_text = " ".join(str(value) for body in policies.values() for _, value in walk(body))
    assert re.search(r"google_logging_metric\.\w+\.name", policy_text) is None
    referenced = set(
        re.findall(r'time_sleep\.log_metrics_queryable\.triggers\["(\w+)"\]', policy_text)
    )
    assert referenced == set(triggers)
    # Dashboard metrics, no alert: P0's own bursts are accepted reuse; keys in use by rotation.
    assert set(metrics) - referenced == {"token_reuse_accepted", "accepted_by_key"}
    assert str(sleep["create_duration"]).endswith("s")
    assert int(str(sleep["create_duration"]).removesuffix("s")) >= 60


def test_quarantine_alert_tells_the_operator_what_to_run(module: Module) -> None:
    policy = module.resources[("google_monitoring_alert_policy", "quarantine")]
    documentation = _single_block(policy, "documentation")
    assert "p0-receiver quarantine list" in str(documentation["content"])
    condition = _single_block(policy, "conditions")
    threshold = _single_block(condition, "condition_threshold")
    aggregation = _single_block(threshold, "aggregations")
    assert aggregation["group_by_fields"] == ["metric.label.reason"]


def test_new_key_secret_versions_raise_an_alert(module: Module) -> None:
    policy = module.resources[("google_monitoring_alert_policy", "key_secret_version_added")]
    condition = _single_block(policy, "conditions")
    matched = _single_block(condition, "condition_matched_log")
    log_filter = str(matched["filter"]).replace('\\"', '"')
    assert "AddSecretVersion" in log_filter
    assert "google_secret_manager_secret.p0_public_keys.secret_id" in log_filter
    assert "cloudaudit.googleapis.com%2Factivity" in log_filter
    # Log-match conditions are refused without a notification rate limit.
    strategy = _single_block(policy, "alert_strategy")
    assert _single_block(strategy, "notification_rate_limit")["period"]


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
    assert expression(module.outputs["deploy_command"]["value"]) == "local.deploy_command"
    command = str(module.locals["deploy_command"])
    assert '"gcloud builds submit ."' in command
    (ignore_file,) = re.findall(r'"--ignore-file=([^"]+)"', command)
    assert ignore_file == BUILD_IGNORE_FILE
    assert (ROOT / ignore_file).is_file()


def test_submitters_read_the_deploy_command_without_state(module: Module) -> None:
    command = module.resources[("google_storage_bucket_object", "deploy_command")]
    assert expression(command["bucket"]) == "google_storage_bucket.build_sources.name"
    assert str(command["content"]).startswith("${local.deploy_command}")
    assert str(module.locals["deploy_command_object"]).startswith("deploy/")
    # Staged sources expire; the published command does not.
    bucket = module.resources[("google_storage_bucket", "build_sources")]
    rule = _single_block(bucket, "lifecycle_rule")
    assert _single_block(rule, "condition")["matches_prefix"] == ["source/"]
    assert "source" in str(module.locals["deploy_command"])


def test_build_submitters_can_stage_follow_and_bill_a_build(module: Module) -> None:
    submitter_grants = {
        (kind, body["role"]): body
        for (kind, _), body in module.resources.items()
        if expression(body.get("for_each")) == "toset(var.build_submitters)"
    }
    assert set(submitter_grants) == {
        ("google_project_iam_member", "roles/cloudbuild.builds.editor"),
        ("google_project_iam_member", "roles/serviceusage.serviceUsageConsumer"),
        ("google_project_iam_member", "roles/logging.viewer"),
        ("google_service_account_iam_member", "roles/iam.serviceAccountUser"),
        # --gcs-source-staging-dir reads the bucket first: storage.buckets.get.
        ("google_storage_bucket_iam_member", "roles/storage.legacyBucketReader"),
        ("google_storage_bucket_iam_member", "roles/storage.objectViewer"),
        ("google_storage_bucket_iam_member", "roles/storage.objectAdmin"),
    }
    for (kind, _), body in submitter_grants.items():
        if kind == "google_storage_bucket_iam_member":
            assert expression(body["bucket"]) == "google_storage_bucket.build_sources.name"
    writer = submitter_grants[("google_storage_bucket_iam_member", "roles/storage.objectAdmin")]
    condition = _single_block(writer, "condition")
    assert str(condition["expression"]).replace('\\"', '"').endswith('/objects/source/")')
    acts_as = submitter_grants[
        ("google_service_account_iam_member", "roles/iam.serviceAccountUser")
    ]
    assert expression(acts_as["service_account_id"]) == "google_service_account.deployer.name"


def test_deploy_and_build_roles_are_scoped_to_the_receiver(module: Module) -> None:
    def condition_of(name: str) -> str:
        body = module.resources[("google_project_iam_member", name)]
        return str(_single_block(body, "condition")["expression"]).replace('\\"', '"')

    functions = condition_of("deployer_functions")
    assert 'resource.type != "cloudfunctions.googleapis.com/Function"' in functions
    assert 'resource.name == "${local.function_resource_name}"' in functions
    invoker = condition_of("deployer_invoker_policy")
    assert 'resource.name == "${local.function_resource_name}"' in invoker
    assert 'resource.name == "${local.run_service_resource_name}"' in invoker
    artifacts = condition_of("builder_artifact_writer")
    assert 'resource.name.startsWith("${local.artifact_repository_name}")' in artifacts
    assert module.locals["function_resource_name"] == (
        "projects/${var.project_id}/locations/${var.region}/functions/${local.function_name}"
    )
    assert module.locals["run_service_resource_name"] == (
        "projects/${var.project_id}/locations/${var.region}/services/${local.function_name}"
    )
    assert str(module.locals["artifact_repository_name"]).endswith("/repositories/gcf-artifacts")
    # No deploy or build role left project-wide without a condition.
    for name in ("deployer_functions", "deployer_invoker_policy", "builder_artifact_writer"):
        assert condition_of(name)


# The API each resource type calls; a type missing here fails the test below, so a new kind of
# resource forces a decision.
API_OF_TYPE = {
    "google_project_service": None,
    "time_sleep": None,
    "google_service_account": "iam.googleapis.com",
    "google_service_account_iam_member": "iam.googleapis.com",
    "google_project_iam_custom_role": "iam.googleapis.com",
    "google_project_iam_member": "cloudresourcemanager.googleapis.com",
    "google_project_iam_audit_config": "cloudresourcemanager.googleapis.com",
    "google_project_service_identity": "pubsub.googleapis.com",
    "google_pubsub_topic": "pubsub.googleapis.com",
    "google_pubsub_subscription": "pubsub.googleapis.com",
    "google_pubsub_topic_iam_member": "pubsub.googleapis.com",
    "google_pubsub_subscription_iam_member": "pubsub.googleapis.com",
    "google_firestore_database": "firestore.googleapis.com",
    "google_firestore_index": "firestore.googleapis.com",
    "google_firestore_field": "firestore.googleapis.com",
    "google_secret_manager_secret": "secretmanager.googleapis.com",
    "google_secret_manager_secret_iam_member": "secretmanager.googleapis.com",
    "google_logging_metric": "logging.googleapis.com",
    "google_logging_project_bucket_config": "logging.googleapis.com",
    "google_logging_project_sink": "logging.googleapis.com",
    "google_monitoring_alert_policy": "monitoring.googleapis.com",
    "google_monitoring_notification_channel": "monitoring.googleapis.com",
    "google_storage_bucket": "storage.googleapis.com",
    "google_storage_bucket_iam_member": "storage.googleapis.com",
    "google_storage_bucket_object": "storage.googleapis.com",
    "google_cloudbuild_trigger": "cloudbuild.googleapis.com",
    "google_bigquery_dataset": "bigquery.googleapis.com",
    "google_bigquery_table": "bigquery.googleapis.com",
    "google_bigquery_table_iam_member": "bigquery.googleapis.com",
    "google_cloud_scheduler_job": "cloudscheduler.googleapis.com",
}
_RESOURCE_REFERENCE = re.compile(r"\b((?:google|time)_\w+)\.(\w+)(\[\\?\"([\w.-]+)\\?\"\])?")
_LOCAL_REFERENCE = re.compile(r"\blocal\.(\w+)")


def _apis_reached(module: Module) -> dict[tuple[str, str], set[str]]:
    """For each resource, the APIs it reaches through references and depends_on, transitively."""
    all_apis = {api for api in API_OF_TYPE.values() if api}

    def direct(value: object) -> tuple[set[tuple[str, str]], set[str]]:
        resources: set[tuple[str, str]] = set()
        apis: set[str] = set()
        pending = [str(value)]
        seen_locals: set[str] = set()
        while pending:
            text = pending.pop()
            for kind, name, _, key in _RESOURCE_REFERENCE.findall(text):
                if kind == "google_project_service" and name == "enabled":
                    apis |= {key} if key else all_apis
                elif (kind, name) in module.resources:
                    resources.add((kind, name))
            for local in _LOCAL_REFERENCE.findall(text):
                if local not in seen_locals and local in module.locals:
                    seen_locals.add(local)
                    pending.append(str(module.locals[local]))
        return resources, apis

    edges = {key: direct(body) for key, body in module.resources.items()}
    reached: dict[tuple[str, str], set[str]] = {}

    def resolve(key: tuple[str, str], stack: frozenset[tuple[str, str]]) -> set[str]:
        if key in reached:
            return reached[key]
        resources, apis = edges[key]
        total = set(apis)
        for other in resources - stack - {key}:
            total |= resolve(other, stack | {key})
        reached[key] = total
        return total

    for key in module.resources:
        resolve(key, frozenset())
    return reached


def test_every_resource_waits_for_the_api_it_calls(module: Module) -> None:
    unknown = {kind for kind, _ in module.resources} - set(API_OF_TYPE)
    assert unknown == set(), f"add these types to API_OF_TYPE: {sorted(unknown)}"
    required_apis = str(module.locals["required_apis"])
    reached = _apis_reached(module)
    missing = []
    for (kind, name), apis in sorted(reached.items()):
        api = API_OF_TYPE[kind]
        if api is None:
            continue
        assert f'"{api}"' in required_apis, f"{api} is not enabled by google_project_service"
        if api not in apis:
            missing.append(f"{kind}.{name} needs {api}")
    assert missing == []


def test_the_api_check_sees_a_missing_dependency(module: Module) -> None:
    role = module.resources[("google_project_iam_custom_role", "invoker_policy_admin")]
    stripped = {key: value for key, value in role.items() if key != "depends_on"}
    broken = Module(
        resources={
            **module.resources,
            ("google_project_iam_custom_role", "invoker_policy_admin"): stripped,
        },
        locals=module.locals,
    )
    reached = _apis_reached(broken)
    assert (
        "iam.googleapis.com"
        not in reached[("google_project_iam_custom_role", "invoker_policy_admin")]
    )


def test_state_has_a_shared_backend_and_never_enters_the_repository() -> None:
    example = hcl2.loads(
        (ROOT / "terraform" / "backend.tf.example").read_text(encoding="utf-8"),
        serialization_options=hcl2.SerializationOptions(
            strip_string_quotes=True, explicit_blocks=False, with_comments=False
        ),
    )
    (terraform,) = example["terraform"]
    (backend,) = terraform["backend"]
    assert set(backend) == {"gcs"}
    assert {"bucket", "prefix"} <= set(backend["gcs"])
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    for pattern in (".terraform/", "*.tfstate", "*.tfstate.*", "*.tfvars"):
        assert pattern in ignored
    # The examples stay tracked: nothing ignores them.
    assert not any(line.endswith(".example") for line in ignored)
