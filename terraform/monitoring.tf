# Log-based metrics over the receiver's one-line-per-request log (jsonPayload.message =
# "p0_delivery", with outcome, reason, httpStatus, eventId, eventType, latencyMs) and its
# token-replay security line, and the alert policies on them.

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
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.publish_failures.name}\" AND resource.type=\"cloud_run_revision\""
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
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.unavailable.name}\" AND resource.type=\"cloud_run_revision\" AND metric.label.reason!=\"publish_failed\""
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
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.token_replays.name}\" AND resource.type=\"cloud_run_revision\""
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
      rotating P0's key pair (README.md, "Rotate P0's key").
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
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.rejections.name}\" AND resource.type=\"cloud_run_revision\""
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
      steps in README.md); `schema_violation` suggests P0 changed its payload. The
      endpoint is public, so scanners without a token also show up here.
    EOT
  }
}
