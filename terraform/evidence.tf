# Evidence nobody could have rewritten: every message published on the events topic (receiver,
# redrive, replay, release) lands unchanged in a write-once Cloud Storage archive, and every
# write to Firestore is attributed by Data Access audit logs. `p0-receiver audit verify`
# compares the audit log with the archive.

locals {
  # Objects the Cloud Storage subscription writes: <prefix><UTC time>_<random><suffix>.
  archive_object_prefix = "events/"
  archive_object_suffix = ".avro"
  # A file is closed after this long (or max_bytes); `audit verify --lag` must exceed it.
  archive_max_duration = "300s"
}

# The archive. A retention policy makes every object undeletable and unreplaceable until it is
# archive_retention_days old, by anyone, the project's owners included; the lifecycle rule
# then deletes it. Locking the policy (archive_lock_retention) makes it permanent: nobody can
# shorten or remove it again, and the bucket cannot be deleted while it holds objects.
resource "google_storage_bucket" "archive" {
  # checkov:skip=CKV_GCP_78:A bucket with a retention policy cannot have Object Versioning; the retention policy is the stronger guarantee (no object can be replaced or deleted at all).
  # checkov:skip=CKV_GCP_62:Objects are immutable for the retention period and Firestore writes are attributed by Data Access logs; usage logs of who read the archive prove nothing about tampering.
  project  = var.project_id
  name     = "${var.project_id}-${var.name_prefix}-archive"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Evidence is never destroyed by `terraform destroy`: a bucket with objects is refused.
  force_destroy = false

  retention_policy {
    retention_period = var.archive_retention_days * 86400
    is_locked        = var.archive_lock_retention
  }

  # Deleting an object is possible once its retention period has passed, never before.
  lifecycle_rule {
    condition {
      age = var.archive_retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled["storage.googleapis.com"]]
}

# What Pub/Sub documents for a Cloud Storage subscription's service agent on its bucket: read
# the bucket's metadata, create objects. Neither role can overwrite or delete an object.
resource "google_storage_bucket_iam_member" "pubsub_agent_archive_reader" {
  bucket = google_storage_bucket.archive.name
  role   = "roles/storage.legacyBucketReader"
  member = local.pubsub_service_agent
}

resource "google_storage_bucket_iam_member" "pubsub_agent_archive_creator" {
  bucket = google_storage_bucket.archive.name
  role   = "roles/storage.objectCreator"
  member = local.pubsub_service_agent
}

# Every message of the events topic, data byte for byte, with its message id, publish time and
# attributes (write_metadata), in Avro files.
resource "google_pubsub_subscription" "archive" {
  # checkov:skip=CKV2_P0R_5:The archive must hold every message: a write it cannot make (bucket IAM, a retention change) is retried from the backlog until fixed, never moved aside to a dead-letter topic, and audit verify reports any gap.
  project = var.project_id
  name    = "${var.name_prefix}-events-archive"
  topic   = google_pubsub_topic.events.id

  # The longest Pub/Sub keeps an unwritten message: time to fix the bucket before a loss.
  message_retention_duration = "2678400s"

  cloud_storage_config {
    bucket          = google_storage_bucket.archive.name
    filename_prefix = local.archive_object_prefix
    filename_suffix = local.archive_object_suffix
    max_duration    = local.archive_max_duration

    avro_config {
      write_metadata = true
    }
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_storage_bucket_iam_member.pubsub_agent_archive_reader,
    google_storage_bucket_iam_member.pubsub_agent_archive_creator,
  ]
}

# Every write to the audit log, the replay ledger and the quarantine (the runtime's, an
# operator's, anyone's) is logged with the identity that made it. Authoritative for this one
# service's audit configuration in the project. Firestore's audit logging is configured under
# datastore.googleapis.com, which covers both datastore.googleapis.com and firestore.googleapis.com;
# the entries themselves carry serviceName firestore.googleapis.com.
resource "google_project_iam_audit_config" "firestore_data_writes" {
  project = var.project_id
  service = "datastore.googleapis.com"

  audit_log_config {
    log_type = "DATA_WRITE"
  }

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

# The archive is only evidence if it is complete: a message the subscription cannot write (bucket
# IAM, a policy change) waits in its backlog. Alert long before the backlog's 31 days run out.
resource "google_monitoring_alert_policy" "archive_backlog" {
  project               = var.project_id
  display_name          = "P0 receiver: messages not reaching the archive (${google_pubsub_subscription.archive.name})"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "ERROR"

  conditions {
    display_name = "Oldest message not yet written to the archive is over an hour old"

    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.archive.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 3600
      duration        = "300s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The Cloud Storage subscription writing the events topic into the write-once archive has
      not written a message for over an hour. Check the subscription's state in the Pub/Sub
      console (it names the error) and the Pub/Sub service agent's roles on the archive bucket
      (terraform/evidence.tf). Messages wait in the backlog for 31 days; once they are written,
      `p0-receiver audit verify --archive "$(terraform output -raw archive_uri)"` confirms the
      window is complete.
    EOT
  }

  depends_on = [google_project_service.enabled["monitoring.googleapis.com"]]
}

# Firestore's Data Access logs are evidence too, and the _Default log bucket keeps them only 30
# days. A sink copies them into a log bucket of their own, kept as long as the audit records
# (at most Cloud Logging's 3650 days; "forever" records get the most it allows) and locked:
# nobody, the project's owners included, can delete the bucket or shorten its retention.
locals {
  data_access_log_retention_days = var.audit_retention_days == 0 ? 3650 : min(max(var.audit_retention_days, 1), 3650)
}

resource "google_logging_project_bucket_config" "firestore_data_access" {
  project        = var.project_id
  location       = "global"
  bucket_id      = "${var.name_prefix}-firestore-data-access"
  description    = "Firestore Data Access audit logs of the P0 receiver's database, kept as long as its audit records."
  retention_days = local.data_access_log_retention_days
  locked         = var.data_access_log_bucket_locked

  depends_on = [google_project_service.enabled["logging.googleapis.com"]]
}

resource "google_logging_project_sink" "firestore_data_access" {
  project     = var.project_id
  name        = "${var.name_prefix}-firestore-data-access"
  description = "Firestore Data Access audit logs into their locked log bucket."
  destination = "logging.googleapis.com/${google_logging_project_bucket_config.firestore_data_access.id}"
  filter = join(" AND ", [
    "logName=\"projects/${var.project_id}/logs/cloudaudit.googleapis.com%2Fdata_access\"",
    "protoPayload.serviceName=\"firestore.googleapis.com\"",
  ])
  # A log bucket in the sink's own project needs no grant to the sink's writer identity.
  unique_writer_identity = true
}
