# The scheduled redrive: a second function, deployed by Cloud Build from the same source
# (entry point `redrive`), publishes every audit record a Pub/Sub outage left `received`.
# Cloud Scheduler calls it every redrive_schedule with an OIDC token of its own service
# account, the only identity allowed to invoke it. The function itself is private
# (`--no-allow-unauthenticated`): unlike the webhook, nothing outside Google calls it.
#
# As for the webhook, Terraform never declares the function: Cloud Build owns it, and its deploy
# grants the scheduler's account the invoker role on the redrive's Cloud Run service.

variable "redrive_schedule" {
  description = "How often Cloud Scheduler runs a redrive pass (unix-cron, UTC). Each pass publishes what is still `received`."
  type        = string
  default     = "*/5 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.redrive_schedule))) == 5
    error_message = "redrive_schedule must be a unix-cron expression of five fields, e.g. \"*/5 * * * *\"."
  }
}

variable "redrive_min_age_seconds" {
  description = "A record is redriven only once it is this old (REDRIVE_MIN_AGE_SECONDS): a delivery still in flight is never raced."
  type        = number
  default     = 300

  validation {
    condition     = var.redrive_min_age_seconds >= 0 && var.redrive_min_age_seconds <= 86400 && floor(var.redrive_min_age_seconds) == var.redrive_min_age_seconds
    error_message = "redrive_min_age_seconds must be a whole number from 0 to 86400."
  }
}

variable "redrive_max_records" {
  description = "Most records one redrive pass publishes (REDRIVE_MAX_RECORDS); the rest wait for the next pass."
  type        = number
  default     = 500

  validation {
    condition     = var.redrive_max_records >= 1 && var.redrive_max_records <= 10000 && floor(var.redrive_max_records) == var.redrive_max_records
    error_message = "redrive_max_records must be a whole number from 1 to 10000."
  }
}

variable "redrive_timeout_seconds" {
  description = "Request timeout of the redrive function in seconds; Cloud Scheduler waits a little longer for its answer."
  type        = number
  default     = 300

  validation {
    # Cloud Scheduler waits at most 30 minutes for an HTTP target (attempt_deadline).
    condition     = var.redrive_timeout_seconds >= 30 && var.redrive_timeout_seconds <= 1780 && floor(var.redrive_timeout_seconds) == var.redrive_timeout_seconds
    error_message = "redrive_timeout_seconds must be a whole number from 30 to 1780."
  }
}

locals {
  redrive_function_name = "${var.name_prefix}-redrive"
  # The same deterministic gen2 URL as the webhook's: the scheduler's target and its audience.
  redrive_url = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.redrive_function_name}"

  # Resource names as IAM conditions see them.
  redrive_function_resource_name    = "projects/${var.project_id}/locations/${var.region}/functions/${local.redrive_function_name}"
  redrive_run_service_resource_name = "projects/${var.project_id}/locations/${var.region}/services/${local.redrive_function_name}"
}

# ---------------------------------------------------------------------------------------------
# The redrive function's identity: read and mark audit records, publish. No key, no secret.
# ---------------------------------------------------------------------------------------------

resource "google_service_account" "redrive" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-redrive"
  display_name = "P0 receiver redrive (function runtime)"
  description  = "Runs the scheduled redrive: reads audit records left received, publishes them, marks them published."

  depends_on = [google_project_service.enabled["iam.googleapis.com"]]
}

resource "google_project_iam_member" "redrive_firestore" {
  project = var.project_id
  # The receiver's no-delete role: the redrive reads records and marks them published.
  role   = google_project_iam_custom_role.runtime_firestore.id
  member = google_service_account.redrive.member

  condition {
    title       = "${local.firestore_database}-only"
    description = "Read and mark audit records in the receiver's Firestore database only."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${local.firestore_database}\""
  }

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

resource "google_project_iam_member" "redrive_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.redrive.member

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

resource "google_pubsub_topic_iam_member" "redrive_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.redrive.member
}

# ---------------------------------------------------------------------------------------------
# The scheduler's identity: it may invoke the redrive function and nothing else.
# ---------------------------------------------------------------------------------------------

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "P0 receiver redrive scheduler"
  description  = "Cloud Scheduler signs its calls to the redrive function as this account (OIDC)."

  depends_on = [google_project_service.enabled["iam.googleapis.com"]]
}

# The scheduler's invoker grant is made by the deploy, on the redrive's Cloud Run service itself
# (cloudbuild.yaml, step grant-redrive-invoker): Cloud Run supplies no resource attributes to IAM
# Conditions, so a project-level run.invoker grant conditioned on the service's name would never
# match and every scheduled call would get 403; an unconditioned one would let the scheduler
# invoke every service in the project. Terraform never declares the service (Cloud Build owns
# it), so the grant cannot be a google_cloud_run_v2_service_iam_member here either.

# Creating a job with an OIDC token needs actAs on the token's account, which this same apply
# creates: whoever runs `terraform apply` may act as the scheduler's account, and that one only.
data "google_client_openid_userinfo" "applier" {}

locals {
  applier_email  = data.google_client_openid_userinfo.applier.email
  applier_member = endswith(local.applier_email, ".gserviceaccount.com") ? "serviceAccount:${local.applier_email}" : "user:${local.applier_email}"
}

resource "google_service_account_iam_member" "applier_acts_as_scheduler" {
  service_account_id = google_service_account.scheduler.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.applier_member
}

resource "google_cloud_scheduler_job" "redrive" {
  project          = var.project_id
  region           = var.region
  name             = local.redrive_function_name
  description      = "Publishes audit records a Pub/Sub outage left received (p0-receiver redrive, scheduled)."
  schedule         = var.redrive_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "${var.redrive_timeout_seconds + 20}s"

  # A pass is idempotent and the next one is a schedule away: a failed attempt is not retried.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = local.redrive_url

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.redrive_url
    }
  }

  depends_on = [
    google_project_service.enabled["cloudscheduler.googleapis.com"],
    google_service_account_iam_member.applier_acts_as_scheduler,
  ]
}

# ---------------------------------------------------------------------------------------------
# The deployer creates and updates the redrive function too (same conditions as the webhook's).
# ---------------------------------------------------------------------------------------------

resource "google_project_iam_member" "deployer_redrive_function" {
  project = var.project_id
  role    = "roles/cloudfunctions.developer"
  member  = google_service_account.deployer.member

  condition {
    title       = "${local.redrive_function_name}-only"
    description = "Functions: the redrive function only. Operations and locations: as the role grants."
    expression  = "resource.type != \"cloudfunctions.googleapis.com/Function\" || resource.name == \"${local.redrive_function_resource_name}\""
  }

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

# `--no-allow-unauthenticated` on an existing function removes any allUsers binding: gcloud
# reads and sets the invoker policy of the redrive's Cloud Run service.
resource "google_project_iam_member" "deployer_redrive_invoker_policy" {
  project = var.project_id
  role    = google_project_iam_custom_role.invoker_policy_admin.id
  member  = google_service_account.deployer.member

  condition {
    title       = "${local.redrive_function_name}-invoker-policy-only"
    description = "Read and set the IAM policy of the redrive function and its Cloud Run service only."
    expression  = "(resource.type != \"cloudfunctions.googleapis.com/Function\" || resource.name == \"${local.redrive_function_resource_name}\") && (resource.type != \"run.googleapis.com/Service\" || resource.name == \"${local.redrive_run_service_resource_name}\")"
  }

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

resource "google_service_account_iam_member" "deployer_acts_as_redrive" {
  service_account_id = google_service_account.redrive.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deployer.member
}

# A record the scheduled redrive refused (it no longer matches its own body) or a bug in a
# pass: nobody watches the scheduler's runs, so the function's own lines raise the alert. A
# log-match condition needs no log-based metric (and no wait for one to become queryable).
resource "google_monitoring_alert_policy" "redrive_problems" {
  project               = var.project_id
  display_name          = "P0 receiver: scheduled redrive refused a record or failed (${local.redrive_function_name})"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "ERROR"

  conditions {
    display_name = "p0_redrive_integrity_failed or p0_internal_error in the redrive function"

    condition_matched_log {
      filter = join(" AND ", [
        "resource.type=\"cloud_run_revision\"",
        "resource.labels.service_name=\"${local.redrive_function_name}\"",
        "severity>=ERROR",
        "jsonPayload.message=(\"p0_redrive_integrity_failed\" OR \"p0_internal_error\")",
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
      The scheduled redrive skipped an audit record whose stored fields no longer match its own
      body (p0_redrive_integrity_failed: the log line names the eventId and the fields), or a
      pass crashed (p0_internal_error). A skipped record is never published: inspect it with
      `p0-receiver audit show EVENT_ID` (docs/operate.md, "Redrive after a Pub/Sub outage"). The
      record may have been edited behind the receiver's back.
    EOT
  }

  depends_on = [google_project_service.enabled["monitoring.googleapis.com"]]
}

# The scheduler's own failed attempts: a 401/403 (the invoker grant is missing), a 5xx or a
# deadline. The function never sees a call its front end refused, so its lines cannot raise
# this one; Cloud Scheduler logs each attempt against the job's own monitored resource.
resource "google_monitoring_alert_policy" "redrive_scheduler_failures" {
  project               = var.project_id
  display_name          = "P0 receiver: a scheduled redrive call failed (${local.redrive_function_name})"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "ERROR"

  conditions {
    display_name = "Cloud Scheduler job ${local.redrive_function_name}: attempt failed"

    condition_matched_log {
      filter = join(" AND ", [
        "resource.type=\"cloud_scheduler_job\"",
        "resource.labels.job_id=\"${google_cloud_scheduler_job.redrive.name}\"",
        "severity>=ERROR",
      ])
    }
  }

  alert_strategy {
    notification_rate_limit {
      period = "300s"
    }
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Cloud Scheduler could not complete a redrive call. A 401 or 403 means the scheduler's
      account lacks roles/run.invoker on the redrive's Cloud Run service: the deploy's
      grant-redrive-invoker step makes that grant (docs/deploy.md). Records a Pub/Sub outage left
      `received` wait until a pass succeeds; `p0-receiver redrive` publishes them by hand.
    EOT
  }

  depends_on = [google_project_service.enabled["monitoring.googleapis.com"]]
}

output "redrive_url" {
  description = "URL of the private redrive function (Cloud Scheduler's target; unauthenticated calls get 401/403)."
  value       = local.redrive_url
}

output "redrive_function_name" {
  description = "Name of the redrive function Cloud Build deploys (also its Cloud Run service name)."
  value       = local.redrive_function_name
}

output "scheduler_service_account" {
  description = "The only identity allowed to invoke the redrive function (Cloud Scheduler's OIDC token)."
  value       = google_service_account.scheduler.email
}
