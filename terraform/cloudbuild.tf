# The deploy pipeline's inputs: the substitutions cloudbuild.yaml reads (one place, used by
# the trigger, printed as an output and published for submitters), a bucket for manually
# submitted sources, what submitters may do, and the optional trigger.

locals {
  # Keys are exactly the substitutions declared in cloudbuild.yaml (tests/infra checks both
  # ways). Values must not contain semicolons: the flag below joins them with `;` (gcloud's
  # `^;^` alternate delimiter), because P0_JWT_ALGORITHMS is a comma-separated list.
  build_substitutions = {
    _REGION                          = var.region
    _FUNCTION_NAME                   = local.function_name
    _RUNTIME_SERVICE_ACCOUNT         = google_service_account.runtime.email
    _BUILD_SERVICE_ACCOUNT           = google_service_account.function_builder.id
    _PUBSUB_TOPIC                    = google_pubsub_topic.events.name
    _FIRESTORE_DATABASE              = local.audit_database
    _FIRESTORE_COLLECTION            = var.firestore_collection
    _FIRESTORE_TOKEN_COLLECTION      = var.firestore_token_collection
    _P0_PUBLIC_KEYS_SECRET           = google_secret_manager_secret.p0_public_keys.secret_id
    _P0_JWT_ISSUER                   = var.p0_jwt_issuer
    _P0_JWT_AUDIENCE                 = var.p0_jwt_audience
    _P0_JWT_SUBJECT                  = var.p0_jwt_subject
    _P0_JWT_LEEWAY_SECONDS           = tostring(var.p0_jwt_leeway_seconds)
    _P0_JWT_MAX_LIFETIME_SECONDS     = tostring(var.p0_jwt_max_lifetime_seconds)
    _P0_REJECT_UNKNOWN_EVENT_TYPES   = tostring(var.p0_reject_unknown_event_types)
    _P0_JWT_ALGORITHMS               = var.p0_jwt_algorithms
    _P0_TOKEN_REUSE                  = var.p0_token_reuse
    _P0_TOKEN_BURST_SECONDS          = tostring(var.p0_token_burst_seconds)
    _FIRESTORE_QUARANTINE_COLLECTION = var.firestore_quarantine_collection
    _QUARANTINE_MAX_PER_TOKEN        = tostring(var.quarantine_max_per_token)
    _QUARANTINE_RETENTION_DAYS       = tostring(var.quarantine_retention_days)
    _MAX_BODY_BYTES                  = tostring(var.max_body_bytes)
    _AUDIT_RETENTION_DAYS            = tostring(var.audit_retention_days)
    _FIRESTORE_TIMEOUT_SECONDS       = tostring(var.firestore_timeout_seconds)
    _PUBSUB_PUBLISH_TIMEOUT_SECONDS  = tostring(var.pubsub_publish_timeout_seconds)
    _RETRY_AFTER_SECONDS             = tostring(var.retry_after_seconds)
    _TRACING                         = var.tracing
    _MAX_INSTANCES                   = tostring(var.max_instances)
    _MIN_INSTANCES                   = tostring(var.min_instances)
    _CONCURRENCY                     = tostring(var.concurrency)
    _CPU                             = var.function_cpu
    _MEMORY                          = var.function_memory
    _TIMEOUT                         = "${var.function_timeout_seconds}s"
    # The scheduled redrive function (redrive.tf).
    _REDRIVE_FUNCTION_NAME   = local.redrive_function_name
    _REDRIVE_SERVICE_ACCOUNT = google_service_account.redrive.email
    _REDRIVE_MIN_AGE_SECONDS = tostring(var.redrive_min_age_seconds)
    _REDRIVE_MAX_RECORDS     = tostring(var.redrive_max_records)
    _REDRIVE_TIMEOUT         = "${var.redrive_timeout_seconds}s"
    # The one identity the deploy lets invoke the redrive (grant-redrive-invoker).
    _SCHEDULER_SERVICE_ACCOUNT = google_service_account.scheduler.email
  }

  build_substitutions_flag = "^;^${join(";", [for key in sort(keys(local.build_substitutions)) : "${key}=${local.build_substitutions[key]}"])}"

  # Where submitters read the deploy command without access to Terraform state.
  deploy_command_object = "deploy/deploy-command.txt"
  deploy_command = join(" ", [
    "gcloud builds submit .",
    "--project=${var.project_id}",
    "--region=${var.region}",
    "--config=cloudbuild.yaml",
    # The build needs the Makefile and tests; .gcloudignore is only the function's upload.
    "--ignore-file=.gcloudbuildignore",
    "--service-account=${google_service_account.deployer.id}",
    "--gcs-source-staging-dir=gs://${google_storage_bucket.build_sources.name}/source",
    "--substitutions='${local.build_substitutions_flag}'",
  ])
}

resource "google_storage_bucket" "build_sources" {
  # checkov:skip=CKV_GCP_62:Holds only disposable copies of the repository staged by gcloud builds submit; the repository is the record, access logs add nothing.
  # checkov:skip=CKV_GCP_78:Staged sources are deleted after 7 days and re-staged by every submit; versioning would only keep garbage longer.
  project  = var.project_id
  name     = "${var.project_id}-${var.name_prefix}-src"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Only disposable staged sources live here.
  force_destroy = true

  # Staged sources only; the published deploy command under deploy/ stays.
  lifecycle_rule {
    condition {
      age            = 7
      matches_prefix = ["source/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled["storage.googleapis.com"]]
}

# The deploy command, readable by every submitter (they have no access to Terraform's state):
#   gcloud storage cat gs://BUCKET/deploy/deploy-command.txt
resource "google_storage_bucket_object" "deploy_command" {
  bucket       = google_storage_bucket.build_sources.name
  name         = local.deploy_command_object
  content_type = "text/plain; charset=utf-8"
  content      = "${local.deploy_command}\n"
}

# People (or CI identities) allowed to run the pipeline by hand: start builds, run them as the
# deployer, stage sources, read the deploy command and follow the build's log.
resource "google_project_iam_member" "submitter_builds" {
  # checkov:skip=CKV_GCP_49:Starting builds is the purpose of this opt-in grant (empty by default); which identity a build runs as is limited by the actAs grant on the deployer alone. In projects that still have the legacy Cloud Build service account builds could also run as it, so disable its default grants there.
  for_each = toset(var.build_submitters)

  project = var.project_id
  role    = "roles/cloudbuild.builds.editor"
  member  = each.value

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

# gcloud bills the API calls of user credentials to the project: Cloud Build's access-control
# page requires serviceusage.services.use beside cloudbuild.builds.editor.
resource "google_project_iam_member" "submitter_service_usage" {
  for_each = toset(var.build_submitters)

  project = var.project_id
  role    = "roles/serviceusage.serviceUsageConsumer"
  member  = each.value

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

# The build logs to Cloud Logging only; gcloud streams it through the Logging API.
resource "google_project_iam_member" "submitter_log_viewer" {
  for_each = toset(var.build_submitters)

  project = var.project_id
  role    = "roles/logging.viewer"
  member  = each.value

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

resource "google_service_account_iam_member" "submitter_acts_as_deployer" {
  for_each = toset(var.build_submitters)

  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}

# --gcs-source-staging-dir makes gcloud read the bucket first (storage.buckets.get), which no
# object role grants.
resource "google_storage_bucket_iam_member" "submitter_reads_bucket" {
  for_each = toset(var.build_submitters)

  bucket = google_storage_bucket.build_sources.name
  role   = "roles/storage.legacyBucketReader"
  member = each.value
}

# Read everything (the deploy command), write only under source/ (the staged tarballs).
resource "google_storage_bucket_iam_member" "submitter_reads_objects" {
  for_each = toset(var.build_submitters)

  bucket = google_storage_bucket.build_sources.name
  role   = "roles/storage.objectViewer"
  member = each.value
}

resource "google_storage_bucket_iam_member" "submitter_stages_sources" {
  for_each = toset(var.build_submitters)

  bucket = google_storage_bucket.build_sources.name
  role   = "roles/storage.objectAdmin"
  member = each.value

  condition {
    title       = "staged-sources-only"
    description = "Create and replace staged sources under source/ only."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.build_sources.name}/objects/source/\")"
  }
}

resource "google_cloudbuild_trigger" "deploy" {
  count = var.enable_build_trigger ? 1 : 0

  project         = var.project_id
  location        = var.region
  name            = "${var.name_prefix}-receiver-deploy"
  description     = "Test and deploy the P0 receiver function on every push to ${var.build_trigger_branch}."
  filename        = "cloudbuild.yaml"
  service_account = google_service_account.deployer.id
  substitutions   = local.build_substitutions

  repository_event_config {
    repository = var.build_trigger_repository

    push {
      branch = var.build_trigger_branch
    }
  }

  lifecycle {
    precondition {
      condition     = var.build_trigger_repository != ""
      error_message = "enable_build_trigger needs build_trigger_repository (a Cloud Build 2nd gen repository resource name)."
    }
  }

  depends_on = [google_project_service.enabled["cloudbuild.googleapis.com"]]
}
