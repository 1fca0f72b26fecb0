# Log-based metrics over the receiver's one-line-per-request log (jsonPayload.message =
# "p0_delivery", with outcome, reason, httpStatus, eventId, eventType, latencyMs), its security
# lines (token replay, accepted token reuse), quarantined bodies and internal errors, and the
# alert policies on them; plus a log-match alert on new versions of P0's key secret.
#
# A new log-based metric's type is not queryable by an alert policy for a few minutes ("Cannot
# find metric(s) that match type", an open provider issue), so every policy names its metric
# through time_sleep.log_metrics_queryable: one apply waits once instead of failing.

locals {
  # Gen2 functions log as their Cloud Run service.
  function_log_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${local.function_name}\"",
  ])
  delivery_log_filter = "${local.function_log_filter} AND jsonPayload.message=\"p0_delivery\""

  notification_channels = concat(
    google_monitoring_notification_channel.email[*].id,
    var.alert_notification_channels,
  )
}

resource "google_logging_metric" "rejections" {
  project     = var.project_id
  name        = "${var.name_prefix}_receiver_rejections"
  description = "Deliveries the receiver rejected (4xx), by reason code."
  filter      = "${local.delivery_log_filter} AND jsonPayload.outcome=\"rejected\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "P0 receiver rejections"

    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Reason code, e.g. expired, wrong_audience, bad_signature, token_replayed, schema_violation."
    }
  }

  label_extractors = {
    reason = "EXTRACT(jsonPayload.reason)"
  }

  depends_on = [google_project_service.enabled["logging.googleapis.com"]]
}

# The audit record exists but the event is not on the topic yet: redrive publishes it later.
resource "google_logging_metric" "publish_failures" {
  project     = var.project_id
  name        = "${var.name_prefix}_receiver_publish_failures"
  description = "Deliveries recorded in the audit log whose publish to Pub/Sub failed (answered 503)."
  filter      = "${local.delivery_log_filter} AND jsonPayload.reason=\"publish_failed\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "P0 receiver publish failures"
  }

  depends_on = [google_project_service.enabled["logging.googleapis.com"]]
}

# Firestore (audit log or replay ledger) unavailable: nothing was recorded, P0 got a 503.
resource "google_logging_metric" "unavailable" {
  project     = var.project_id
  name        = "${var.name_prefix}_receiver_unavailable"
  description = "Deliveries answered 503 because a dependency was unavailable, by reason code."
  filter      = "${local.delivery_log_filter} AND jsonPayload.outcome=\"unavailable\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "P0 receiver unavailable"

    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Reason code: audit_unavailable, ledger_unavailable or publish_failed."
    }
  }

  label_extractors = {
    reason = "EXTRACT(jsonPayload.reason)"
  }

  depends_on = [google_project_service.enabled["logging.googleapis.com"]]
}

resource "google_logging_metric" "token_replays" {
  project     = var.project_id
  name        = "${var.name_prefix}_receiver_token_replays"
  description = "A P0 token seen again with a different body (possible token theft)."
  filter      = "${local.function_log_filter} AND severity=ALERT AND jsonPayload.message=\"p0_token_replay\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "P0 receiver token replays"
  }

  depends_on = [google_project_service.enabled["logging.googleapis.com"]]
}

resource "google_logging_metric" "quarantined" {
  project     = var.project_id
  name        = "${var.name_prefix}_receiver_quarantined"
  description = "Authentic deliveries the receiver refused and kept in quarantine, by reason."
  filter      = "${local.function_log_filter} AND severity=WARNING AND jsonPayload.message=\"p0_quarantined\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "P0 receiver quarantined bodies"

    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Why the body was refused: schema_violation, unknown_type, token_reused or unstorable."
    }
  }

  label_extractors = {
    reason = "EXTRACT(jsonPayload.reason)"
  }

  depends_on = [google_project_service.enabled["logging.googleapis.com"]]
}

# P0 bursts (same deterministic token, several events) are accepted and flagged: a rate to
# watch on a dashboard, not an incident, so no alert.
resource "google_logging_metric" "token_reuse_accepted" {
  project     = var.project_id
  name        = "${var.name_prefix}_receiver_token_reuse_accepted"
  description = "A P0 token seen again with a different body and accepted under the reuse policy."
  filter      = "${local.function_log_filter} AND severity=WARNING AND jsonPayload.message=\"p0_token_reuse_accepted\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "P0 receiver accepted token reuse"
  }

  depends_on = [google_project_service.enabled["logging.googleapis.com"]]
}

resource "google_logging_metric" "internal_errors" {
  project     = var.project_id
  name        = "${var.name_prefix}_receiver_internal_errors"
  description = "Unexpected exceptions in the receiver (a bug, not a dependency outage)."
  filter      = "${local.function_log_filter} AND severity=ERROR AND jsonPayload.message=\"p0_internal_error\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "P0 receiver internal errors"
  }

  depends_on = [google_project_service.enabled["logging.googleapis.com"]]
}

# Which key verified each accepted delivery (the RFC 7638 thumbprint on the p0_delivery line):
# during a key rotation the new key's series must start before the old key is removed. A
# dashboard figure, no alert.
resource "google_logging_metric" "accepted_by_key" {
  project     = var.project_id
  name        = "${var.name_prefix}_receiver_accepted_by_key"
  description = "Accepted deliveries by the JWK thumbprint of the key that verified their token."
  filter      = "${local.delivery_log_filter} AND jsonPayload.outcome=\"accepted\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "P0 receiver accepted deliveries by key"

    labels {
      key         = "key_thumbprint"
      value_type  = "STRING"
      description = "RFC 7638 JWK SHA-256 thumbprint (base64url) of the verifying key."
    }
  }

  label_extractors = {
    key_thumbprint = "EXTRACT(jsonPayload.keyThumbprint)"
  }

  depends_on = [google_project_service.enabled["logging.googleapis.com"]]
}

# Policies read each metric's name from here: a new or renamed metric is waited for once.
resource "time_sleep" "log_metrics_queryable" {
  create_duration = "120s"

  triggers = {
    rejections       = google_logging_metric.rejections.name
    publish_failures = google_logging_metric.publish_failures.name
    unavailable      = google_logging_metric.unavailable.name
    token_replays    = google_logging_metric.token_replays.name
    quarantined      = google_logging_metric.quarantined.name
    internal_errors  = google_logging_metric.internal_errors.name
    self_approvals   = google_logging_metric.self_approvals.name
  }
}

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email != "" ? 1 : 0

  project      = var.project_id
  display_name = "P0 receiver alerts"
  type         = "email"

  labels = {
    email_address = var.alert_email
  }

  depends_on = [google_project_service.enabled["monitoring.googleapis.com"]]
}

# Events are in the audit log but not delivered to subscribers, or not recorded at all.
resource "google_monitoring_alert_policy" "delivery_failures" {
  project               = var.project_id
  display_name          = "P0 receiver: deliveries failing (${local.function_name})"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "ERROR"

  conditions {
    display_name = "Publish to Pub/Sub failed"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics_queryable.triggers["publish_failures"]}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "Audit log or replay ledger unavailable"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics_queryable.triggers["unavailable"]}\" AND resource.type=\"cloud_run_revision\" AND metric.label.reason!=\"publish_failed\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.reason"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The P0 receiver answered 503. P0 may retry; every delivery that reached the audit log
      stays `received` until published. Check the function's logs
      (`jsonPayload.message="p0_delivery" AND jsonPayload.outcome="unavailable"`), fix the
      dependency, then publish the pending records with the operator CLI's redrive command.
    EOT
  }
}

resource "google_monitoring_alert_policy" "token_replay" {
  project               = var.project_id
  display_name          = "P0 receiver: token replay detected (${local.function_name})"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "CRITICAL"

  conditions {
    display_name = "Token presented again with a different body"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics_queryable.triggers["token_replays"]}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
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
      A valid P0 token was presented a second time with a different body and was rejected.
      Someone may hold a copy of P0's tokens (a proxy, a log, a compromised client). Read the
      ALERT line (`jsonPayload.message="p0_token_replay"`) for the source, and consider
      rotating P0's key pair (docs/deploy.md, "Rotate P0's key").
    EOT
  }
}

resource "google_monitoring_alert_policy" "rejections" {
  project               = var.project_id
  display_name          = "P0 receiver: rejections above normal (${local.function_name})"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "WARNING"

  conditions {
    display_name = "Rejected deliveries per reason"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics_queryable.triggers["rejections"]}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.rejection_alert_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.reason"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Many deliveries were rejected for one reason in 5 minutes. `expired` or `not_yet_valid`
      suggests clock trouble; `wrong_audience`, `wrong_issuer` or `bad_signature` after a
      change on the P0 side suggests a configuration or key mismatch (see the key rotation
      steps in docs/deploy.md); `schema_violation` suggests P0 changed its payload. The
      endpoint is public, so scanners without a token also show up here.
    EOT
  }
}

resource "google_monitoring_alert_policy" "quarantine" {
  project               = var.project_id
  display_name          = "P0 receiver: bodies quarantined (${local.function_name})"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "WARNING"

  conditions {
    display_name = "Authentic deliveries refused and kept in quarantine, per reason"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics_queryable.triggers["quarantined"]}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.reason"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The receiver refused a delivery whose token was valid and kept the body in quarantine
      (reason in the metric label: schema_violation or unknown_type when P0 changed its
      payload, token_reused when a token came back with a different body, unstorable when the
      audit log could not take it). Nothing is published until an operator decides. List them
      with `p0-receiver quarantine list`, inspect one, then release or discard it with the
      operator CLI. Bodies expire after the quarantine retention.
    EOT
  }
}

resource "google_monitoring_alert_policy" "internal_errors" {
  project               = var.project_id
  display_name          = "P0 receiver: internal errors (${local.function_name})"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "ERROR"

  conditions {
    display_name = "Unexpected exception in the receiver"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics_queryable.triggers["internal_errors"]}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The receiver hit an unexpected exception (a bug, not an outage of Firestore or Pub/Sub)
      and P0 got a 500. Read the ERROR lines (`jsonPayload.message="p0_internal_error"`) with
      their tracebacks. Deliveries recorded before the error stay in the audit log; check
      pending ones with the operator CLI and redrive them once fixed.
    EOT
  }
}

# The function reads the key version pinned at its last deploy, so a new version changes
# nothing until the pipeline runs again; someone adding one is worth knowing at once.
resource "google_monitoring_alert_policy" "key_secret_version_added" {
  project               = var.project_id
  display_name          = "P0 receiver: new version of P0's key secret (${google_secret_manager_secret.p0_public_keys.secret_id})"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "WARNING"

  conditions {
    display_name = "AddSecretVersion on P0's key secret"

    condition_matched_log {
      filter = join(" AND ", [
        "logName=\"projects/${var.project_id}/logs/cloudaudit.googleapis.com%2Factivity\"",
        "protoPayload.serviceName=\"secretmanager.googleapis.com\"",
        "protoPayload.methodName=\"google.cloud.secretmanager.v1.SecretManagerService.AddSecretVersion\"",
        "protoPayload.resourceName=~\"/secrets/${google_secret_manager_secret.p0_public_keys.secret_id}(/versions/[0-9]+)?$\"",
      ])
    }
  }

  alert_strategy {
    # Required for log-match conditions: at most one notification per period.
    notification_rate_limit {
      period = "300s"
    }
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      A version was added to the secret holding P0's public key(s). Running instances keep the
      version pinned at their last deploy, so nothing changed yet. If this is a planned key
      rotation, run the deploy pipeline to roll it out (docs/deploy.md, "Rotate P0's key"). If
      nobody expected it, disable the version (`gcloud secrets versions disable`) and find out
      who added it (the audit log entry names the principal).
    EOT
  }

  depends_on = [google_project_service.enabled["monitoring.googleapis.com"]]
}
