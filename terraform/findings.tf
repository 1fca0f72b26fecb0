# Access-review findings decided on receipt: the p0_delivery line carries them
# (jsonPayload.findings, a comma list of rule ids). A self-approval is the one an auditor
# cannot accept after the fact, so it alerts at once; the other rules go to the report.

resource "google_logging_metric" "self_approvals" {
  project     = var.project_id
  name        = "${var.name_prefix}_receiver_self_approvals"
  description = "Accepted P0 approvals whose approver is the principal or the requester (finding self-approval)."
  filter      = "${local.delivery_log_filter} AND jsonPayload.outcome=\"accepted\" AND jsonPayload.findings:\"self-approval\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "P0 receiver self-approvals"

    labels {
      key         = "event_type"
      value_type  = "STRING"
      description = "The approval's event type, e.g. request-approved or preapproval-created."
    }
  }

  label_extractors = {
    event_type = "EXTRACT(jsonPayload.eventType)"
  }

  depends_on = [google_project_service.enabled["logging.googleapis.com"]]
}

resource "google_monitoring_alert_policy" "self_approval" {
  project               = var.project_id
  display_name          = "P0 receiver: self-approval (${local.function_name})"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "WARNING"

  conditions {
    display_name = "An approver approved their own access"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${time_sleep.log_metrics_queryable.triggers["self_approvals"]}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.event_type"]
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
      P0 recorded an approval whose approver is the principal or the requester: no second
      person agreed to this access. Find it with the operator CLI
      (`p0-receiver audit query --since 1h --type request-approved --format json`, the record's
      `findings`), or in the logs (`jsonPayload.message="p0_delivery" AND
      jsonPayload.findings:"self-approval"`), and ask the approver why.
      `p0-receiver report access-review` lists every finding of a period for the auditor.
    EOT
  }
}
