# Optional: every event in a BigQuery table through a BigQuery subscription, with no code.
# Columns are Pub/Sub's metadata layout: `data` is P0's JSON body as text (query it with
# JSON_VALUE), `attributes` the message attributes as JSON text.

locals {
  bigquery_location = coalesce(var.bigquery_location, var.region)
}

resource "google_bigquery_dataset" "events" {
  count = var.enable_bigquery_subscription ? 1 : 0

  project     = var.project_id
  dataset_id  = "${replace(var.name_prefix, "-", "_")}_events"
  location    = local.bigquery_location
  description = "P0 notifications delivered by the receiver's Pub/Sub topic."

  depends_on = [google_project_service.enabled]
}

resource "google_bigquery_table" "events" {
  count = var.enable_bigquery_subscription ? 1 : 0

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.events[0].dataset_id
  table_id            = "p0_events"
  deletion_protection = true
  description         = "One row per Pub/Sub message (a message can repeat: dedupe on JSON_VALUE(attributes, '$.eventId'))."

  time_partitioning {
    type  = "DAY"
    field = "publish_time"
    # Same retention as the audit log; 0 days means keep forever.
    expiration_ms = var.audit_retention_days > 0 ? var.audit_retention_days * 86400000 : null
  }

  schema = jsonencode([
    { name = "subscription_name", type = "STRING", mode = "NULLABLE" },
    { name = "message_id", type = "STRING", mode = "NULLABLE" },
    { name = "publish_time", type = "TIMESTAMP", mode = "NULLABLE" },
    { name = "data", type = "STRING", mode = "NULLABLE" },
    { name = "attributes", type = "STRING", mode = "NULLABLE" },
  ])
}

# The Pub/Sub service agent writes the rows: data editor on this table only.
resource "google_bigquery_table_iam_member" "pubsub_agent_writer" {
  count = var.enable_bigquery_subscription ? 1 : 0

  project    = var.project_id
  dataset_id = google_bigquery_table.events[0].dataset_id
  table_id   = google_bigquery_table.events[0].table_id
  role       = "roles/bigquery.dataEditor"
  member     = local.pubsub_service_agent
}

resource "google_pubsub_subscription" "bigquery" {
  count = var.enable_bigquery_subscription ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-events-bigquery"
  topic   = google_pubsub_topic.events.id

  bigquery_config {
    table          = "${google_bigquery_table.events[0].project}.${google_bigquery_table.events[0].dataset_id}.${google_bigquery_table.events[0].table_id}"
    write_metadata = true
  }

  # Rows BigQuery refuses (e.g. after a schema change) are dead-lettered, not retried forever.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_bigquery_table_iam_member.pubsub_agent_writer,
    google_pubsub_topic_iam_member.pubsub_agent_dead_letter_publisher,
  ]
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_bigquery_subscriber" {
  count = var.enable_bigquery_subscription ? 1 : 0

  project      = var.project_id
  subscription = google_pubsub_subscription.bigquery[0].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
