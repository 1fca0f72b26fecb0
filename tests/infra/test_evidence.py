"""terraform/evidence.tf and the runtime's Firestore role, against the code they serve."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

pytest.importorskip(
    "hcl2", reason="python-hcl2 is not installed (pip install -r requirements-infra.txt)"
)

from p0_receiver.core.record import AuditRecord, RecordField, message_attributes
from p0_receiver.usecases.audit.verify import DEFAULT_LAG, EVENT_ID_ATTRIBUTE
from tests.infra.terraform_model import ROOT, Module, expression, load_module

pytestmark = pytest.mark.infra

FIRESTORE_ADAPTER = ROOT / "src" / "p0_receiver" / "adapters" / "firestore.py"

# Firestore's documented permissions for each client call the adapters make ("Security for
# server client libraries": required permissions per API method). A call missing here fails
# the test below, so a new kind of Firestore call forces a decision about the role.
_RUN_QUERY = frozenset({"datastore.entities.get", "datastore.entities.list"})
PERMISSION_OF_CALL: dict[str, frozenset[str]] = {
    # DocumentReference.create / Transaction.create: commit with exists=false.
    "create": frozenset({"datastore.entities.create"}),
    # DocumentReference.update / Transaction.update: commit with exists=true.
    "update": frozenset({"datastore.entities.update"}),
    # DocumentReference.get / Transaction.get of a document: batchGet.
    "get": frozenset({"datastore.entities.get"}),
    # A query (the redrive's scan of records left `received`, the quarantine's per-token
    # bound, the operator views) runs as runQuery, whichever call executes it: get and list.
    "where": _RUN_QUERY,
    "order_by": _RUN_QUERY,
    "limit": _RUN_QUERY,
    "stream": _RUN_QUERY,
    # @firestore.transactional: beginTransaction, rollback, and commit without writes.
    "transactional": frozenset({"datastore.databases.get"}),
    "transaction": frozenset({"datastore.databases.get"}),
    # Would need create AND update; the adapters never blind-write.
    "set": frozenset({"datastore.entities.create", "datastore.entities.update"}),
    "delete": frozenset({"datastore.entities.delete"}),
}
# Calls on other objects that share a name with a Firestore call (dict.get on stored data).
NOT_FIRESTORE_CALLS = {"(stored or {}).get"}


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module()


def _single(body: dict[str, object], name: str) -> dict[str, object]:
    blocks = body.get(name)
    assert isinstance(blocks, list)
    assert len(blocks) == 1
    block = blocks[0]
    assert isinstance(block, dict)
    return block


# Adapter methods only an operator's command calls, with the operator's own credentials
# (`p0-receiver quarantine discard`): never the receiver's or the redrive's identity.
OPERATOR_ONLY_METHODS = {"discard"}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except the bodies of operator-only methods."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef) and node.name in OPERATOR_ONLY_METHODS:
            continue
        nodes.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def _firestore_calls(path: Path) -> set[str]:
    """Names of the Firestore client calls the runtime can make from an adapter module (method
    calls and the ``@firestore.transactional`` decorator)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if ast.unparse(node.func) in NOT_FIRESTORE_CALLS:
                continue
            names.add(node.func.attr)
        elif isinstance(node, ast.Attribute) and ast.unparse(node) == "firestore.transactional":
            names.add("transactional")
    return names & set(PERMISSION_OF_CALL)


def test_the_runtime_role_is_exactly_what_the_adapters_call(module: Module) -> None:
    role = module.resources[("google_project_iam_custom_role", "runtime_firestore")]
    needed = set().union(*(PERMISSION_OF_CALL[c] for c in _firestore_calls(FIRESTORE_ADAPTER)))
    assert set(role["permissions"]) == needed
    assert "datastore.entities.delete" not in role["permissions"]
    binding = module.resources[("google_project_iam_member", "runtime_firestore")]
    assert expression(binding["role"]) == "google_project_iam_custom_role.runtime_firestore.id"
    condition = str(_single(binding, "condition")["expression"])
    assert "databases/${local.firestore_database}" in condition


def test_the_call_scan_sees_a_delete(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter.py"
    adapter.write_text(
        FIRESTORE_ADAPTER.read_text(encoding="utf-8")
        + "\n\ndef purge(document):\n    document.delete()\n",
        encoding="utf-8",
    )
    assert "delete" in _firestore_calls(adapter)
    assert "delete" not in _firestore_calls(FIRESTORE_ADAPTER)


def test_the_call_scan_sees_a_query(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter.py"
    adapter.write_text(
        "def pending(collection):\n"
        "    return list(collection.where(filter=None).limit(10).stream())\n",
        encoding="utf-8",
    )
    needed = set().union(*(PERMISSION_OF_CALL[c] for c in _firestore_calls(adapter)))
    assert needed == {"datastore.entities.get", "datastore.entities.list"}


def test_the_archive_bucket_is_write_once(module: Module) -> None:
    bucket = module.resources[("google_storage_bucket", "archive")]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["force_destroy"] is False
    retention = _single(bucket, "retention_policy")
    assert expression(retention["retention_period"]) == "var.archive_retention_days * 86400"
    assert expression(retention["is_locked"]) == "var.archive_lock_retention"
    rule = _single(bucket, "lifecycle_rule")
    assert expression(_single(rule, "condition")["age"]) == "var.archive_retention_days"
    assert _single(rule, "action")["type"] == "Delete"
    assert "versioning" not in bucket  # a retention policy excludes Object Versioning
    assert module.variables["archive_retention_days"]["default"] == 400
    assert module.variables["archive_lock_retention"]["default"] is False
    assert "IRREVERSIBLE" in str(module.variables["archive_lock_retention"]["description"])


def test_the_pubsub_agent_can_only_read_the_bucket_and_create_objects(module: Module) -> None:
    grants = {
        (body["role"], expression(body["member"]))
        for (kind, _), body in module.resources.items()
        if kind == "google_storage_bucket_iam_member"
        and expression(body["bucket"]) == "google_storage_bucket.archive.name"
    }
    assert grants == {
        ("roles/storage.legacyBucketReader", "local.pubsub_service_agent"),
        ("roles/storage.objectCreator", "local.pubsub_service_agent"),
    }


def test_every_published_message_is_archived_with_its_metadata(module: Module) -> None:
    subscription = module.resources[("google_pubsub_subscription", "archive")]
    assert expression(subscription["topic"]) == "google_pubsub_topic.events.id"
    assert "filter" not in subscription  # every message: receiver, redrive, replay, release
    config = _single(subscription, "cloud_storage_config")
    assert expression(config["bucket"]) == "google_storage_bucket.archive.name"
    assert _single(config, "avro_config")["write_metadata"] is True
    assert module.locals["archive_object_suffix"] == ".avro"
    # The subscription exists only once the agent may write (else its first writes fail).
    assert set(subscription["depends_on"]) == {
        "${google_storage_bucket_iam_member.pubsub_agent_archive_reader}",
        "${google_storage_bucket_iam_member.pubsub_agent_archive_creator}",
    }
    assert subscription["message_retention_duration"] == "2678400s"
    assert _single(subscription, "expiration_policy")["ttl"] == ""


def test_verify_waits_longer_than_an_archive_object_stays_open(module: Module) -> None:
    max_duration = str(module.locals["archive_max_duration"])
    assert re.fullmatch(r"\d+s", max_duration)
    assert timedelta(seconds=int(max_duration[:-1])) * 2 <= DEFAULT_LAG


def test_verify_matches_messages_on_an_attribute_the_receiver_sends() -> None:
    record = {
        "eventId": "e",
        "eventType": "t",
        "notifierId": "n",
        "receivedAt": datetime(2026, 1, 1, tzinfo=UTC),
    }
    assert message_attributes(cast("AuditRecord", record))[EVENT_ID_ATTRIBUTE] == "e"


def test_firestore_writes_are_attributed(module: Module) -> None:
    audit = module.resources[("google_project_iam_audit_config", "firestore_data_writes")]
    # Firestore's audit logging is configured under datastore.googleapis.com for both APIs; the
    # entries then carry serviceName firestore.googleapis.com (what docs/operate.md reads).
    assert audit["service"] == "datastore.googleapis.com"
    assert audit["audit_log_config"] == [{"log_type": "DATA_WRITE"}]
    # Nobody is exempt: the runtime's writes are the ones to attribute.
    assert "exempted_members" not in audit["audit_log_config"][0]


def test_the_archive_is_an_output_verify_takes(module: Module) -> None:
    value = str(module.outputs["archive_uri"]["value"])
    assert value == "gs://${google_storage_bucket.archive.name}/${local.archive_object_prefix}"
    assert str(module.locals["archive_object_prefix"]).endswith("/")


def test_the_key_metric_reads_the_field_the_log_line_writes(module: Module) -> None:
    metric = module.resources[("google_logging_metric", "accepted_by_key")]
    assert metric["label_extractors"] == {
        "key_thumbprint": f"EXTRACT(jsonPayload.{RecordField.KEY_THUMBPRINT})"
    }
    log_filter = str(metric["filter"]).replace('\\"', '"')
    assert 'jsonPayload.outcome="accepted"' in log_filter
    assert "${local.delivery_log_filter}" in log_filter


def test_an_archive_that_stops_being_written_raises_an_alert(module: Module) -> None:
    policy = module.resources[("google_monitoring_alert_policy", "archive_backlog")]
    condition = _single(_single(policy, "conditions"), "condition_threshold")
    log_filter = str(condition["filter"]).replace('\\"', '"')
    assert 'metric.type="pubsub.googleapis.com/subscription/oldest_unacked_message_age"' in (
        log_filter
    )
    assert "${google_pubsub_subscription.archive.name}" in log_filter
    backlog = module.resources[("google_pubsub_subscription", "archive")]
    retention = int(str(backlog["message_retention_duration"]).removesuffix("s"))
    # Raised long before the backlog's retention drops an unwritten message.
    assert int(str(condition["threshold_value"])) * 24 <= retention
    assert expression(policy["notification_channels"]) == "local.notification_channels"


def test_firestore_data_access_logs_are_kept_as_long_as_the_records_in_a_locked_bucket() -> None:
    module = load_module()
    bucket = module.resources[("google_logging_project_bucket_config", "firestore_data_access")]
    assert expression(bucket["retention_days"]) == "local.data_access_log_retention_days"
    retention = str(module.locals["data_access_log_retention_days"])
    # "Keep forever" (0) gets the most Cloud Logging allows; otherwise the records' own days.
    assert "var.audit_retention_days == 0 ? 3650" in retention
    assert "min(max(var.audit_retention_days, 1), 3650)" in retention
    assert expression(bucket["locked"]) == "var.data_access_log_bucket_locked"
    assert module.variables["data_access_log_bucket_locked"]["default"] is True
    sink = module.resources[("google_logging_project_sink", "firestore_data_access")]
    assert "google_logging_project_bucket_config.firestore_data_access.id" in str(
        sink["destination"]
    )
    log_filter = str(sink["filter"]).replace('\\"', '"')
    # The entries the audit config turns on (configured as datastore.googleapis.com, written
    # as firestore.googleapis.com) and nothing else.
    assert "cloudaudit.googleapis.com%2Fdata_access" in log_filter
    assert 'protoPayload.serviceName="firestore.googleapis.com"' in log_filter
    audit = module.resources[("google_project_iam_audit_config", "firestore_data_writes")]
    assert audit["service"] == "datastore.googleapis.com"
