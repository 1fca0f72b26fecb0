# The audit log: system of record for every verified delivery; the token-replay ledger; the
# quarantine of authentic bodies the receiver refused.

resource "google_firestore_database" "audit" {
  count = var.create_firestore_database ? 1 : 0

  project     = var.project_id
  name        = local.firestore_database
  location_id = local.firestore_location
  type        = "FIRESTORE_NATIVE"

  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  # `terraform destroy` forgets the database instead of deleting the audit log.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.enabled["firestore.googleapis.com"]]
}

locals {
  # The database the indexes and fields below belong to; referencing the resource (when it is
  # created here) orders them after it.
  audit_database = var.create_firestore_database ? google_firestore_database.audit[0].name : local.firestore_database

  # Exactly p0_receiver.core.queries.required_indexes(): one (equality field, order field) index per
  # filter the operator CLI offers, which Firestore merges for multi-filter queries.
  # tests/infra proves this map and the query catalogue agree. The shapes with no equality
  # filter (the stats window on receivedAt, `audit show`'s event-id prefix range on eventId)
  # use the automatic single-field indexes, so neither field may be exempted below.
  audit_composite_indexes = {
    "eventType-receivedAt" = [
      { field_path = "eventType", order = "ASCENDING" },
      { field_path = "receivedAt", order = "DESCENDING" },
    ]
    "principal-receivedAt" = [
      { field_path = "principal", order = "ASCENDING" },
      { field_path = "receivedAt", order = "DESCENDING" },
    ]
    "approver-receivedAt" = [
      { field_path = "approver", order = "ASCENDING" },
      { field_path = "receivedAt", order = "DESCENDING" },
    ]
    "notifierId-receivedAt" = [
      { field_path = "notifierId", order = "ASCENDING" },
      { field_path = "receivedAt", order = "DESCENDING" },
    ]
    "objectId-receivedAt" = [
      { field_path = "objectId", order = "ASCENDING" },
      { field_path = "receivedAt", order = "DESCENDING" },
    ]
    "publishStatus-receivedAt" = [
      { field_path = "publishStatus", order = "ASCENDING" },
      { field_path = "receivedAt", order = "DESCENDING" },
    ]
    "objectId-occurredAt" = [
      { field_path = "objectId", order = "ASCENDING" },
      { field_path = "occurredAt", order = "ASCENDING" },
    ]
    "notifierId-occurredAt" = [
      { field_path = "notifierId", order = "ASCENDING" },
      { field_path = "occurredAt", order = "ASCENDING" },
    ]
  }

  # Never filtered on; indexing them would only cost index writes (the body alone can be
  # 256 KiB). Mirrors p0_receiver.core.queries.UNINDEXED_FIELDS.
  audit_unindexed_fields = ["body", "token", "reason", "permissionDescription", "p0Times"]

  # TTL fields (p0_receiver.core.queries.AUDIT_TTL_FIELD / TOKEN_LEDGER_TTL_FIELD; the quarantine's
  # is expireAt, QUARANTINE_RETENTION_DAYS after the body was kept).
  audit_ttl_field        = "expireAt"
  token_ledger_ttl_field = "expiresAt"
  quarantine_ttl_field   = "expireAt"
}

resource "google_firestore_index" "audit" {
  for_each = local.audit_composite_indexes

  project     = var.project_id
  database    = local.audit_database
  collection  = var.firestore_collection
  query_scope = "COLLECTION"
  api_scope   = "ANY_API"

  dynamic "fields" {
    for_each = each.value
    content {
      field_path = fields.value.field_path
      order      = fields.value.order
    }
  }

  depends_on = [google_project_service.enabled["firestore.googleapis.com"]]
}

# Single-field index exemptions: an empty index_config removes every automatic index.
resource "google_firestore_field" "audit_unindexed" {
  for_each = toset(local.audit_unindexed_fields)

  project    = var.project_id
  database   = local.audit_database
  collection = var.firestore_collection
  field      = each.value

  index_config {}

  depends_on = [google_project_service.enabled["firestore.googleapis.com"]]
}

# Retention: Firestore deletes an audit record (typically within 24 h) once expireAt passes.
# The field is also exempt from indexing: nothing queries it, and an index on a steadily
# increasing timestamp is a write hot-spot.
resource "google_firestore_field" "audit_ttl" {
  project    = var.project_id
  database   = local.audit_database
  collection = var.firestore_collection
  field      = local.audit_ttl_field

  ttl_config {}
  index_config {}

  depends_on = [google_project_service.enabled["firestore.googleapis.com"]]
}

# The replay ledger keeps a token's fingerprint only until the token itself expires.
resource "google_firestore_field" "token_ledger_ttl" {
  project    = var.project_id
  database   = local.audit_database
  collection = var.firestore_token_collection
  field      = local.token_ledger_ttl_field

  ttl_config {}
  index_config {}

  depends_on = [google_project_service.enabled["firestore.googleapis.com"]]
}

# The quarantine's per-token bound (p0_receiver.core.quarantine.token_bound_collection): one document
# per token, kept until the last of its entries expires.
resource "google_firestore_field" "quarantine_token_bound_ttl" {
  project    = var.project_id
  database   = local.audit_database
  collection = "${var.firestore_quarantine_collection}_per_token"
  field      = local.quarantine_ttl_field

  ttl_config {}
  index_config {}

  depends_on = [google_project_service.enabled["firestore.googleapis.com"]]
}

# Quarantined bodies are evidence for an operator, not a record: kept quarantine_retention_days.
resource "google_firestore_field" "quarantine_ttl" {
  project    = var.project_id
  database   = local.audit_database
  collection = var.firestore_quarantine_collection
  field      = local.quarantine_ttl_field

  ttl_config {}
  index_config {}

  depends_on = [google_project_service.enabled["firestore.googleapis.com"]]
}
