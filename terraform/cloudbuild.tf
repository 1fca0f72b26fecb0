# The deploy pipeline's inputs: the substitutions cloudbuild.yaml reads (one place, used by
# the trigger and printed as an output for manual runs), a bucket for manually submitted
# sources, and the optional trigger.

locals {
  # Keys are exactly the substitutions declared in cloudbuild.yaml (tests/infra checks both
  # ways). Values must not contain commas: the output joins them for --substitutions.
  build_substitutions = {
    _REGION                         = var.region
    _FUNCTION_NAME                  = local.function_name
    _RUNTIME_SERVICE_ACCOUNT        = google_service_account.runtime.email
    _BUILD_SERVICE_ACCOUNT          = google_service_account.function_builder.id
    _PUBSUB_TOPIC                   = google_pubsub_topic.events.name
    _FIRESTORE_DATABASE             = local.audit_database
    _FIRESTORE_COLLECTION           = var.firestore_collection
    _FIRESTORE_TOKEN_COLLECTION     = var.firestore_token_collection
    _P0_PUBLIC_KEYS_SECRET          = google_secret_manager_secret.p0_public_keys.secret_id
    _P0_JWT_ISSUER                  = var.p0_jwt_issuer
    _P0_JWT_AUDIENCE                = var.p0_jwt_audience
    _P0_JWT_SUBJECT                 = var.p0_jwt_subject
    _P0_JWT_LEEWAY_SECONDS          = tostring(var.p0_jwt_leeway_seconds)
    _P0_JWT_MAX_LIFETIME_SECONDS    = tostring(var.p0_jwt_max_lifetime_seconds)
    _P0_REJECT_UNKNOWN_EVENT_TYPES  = tostring(var.p0_reject_unknown_event_types)
    _MAX_BODY_BYTES                 = tostring(var.max_body_bytes)
    _AUDIT_RETENTION_DAYS           = tostring(var.audit_retention_days)
    _FIRESTORE_TIMEOUT_SECONDS      = tostring(var.firestore_timeout_seconds)
    _PUBSUB_PUBLISH_TIMEOUT_SECONDS = tostring(var.pubsub_publish_timeout_seconds)
    _RETRY_AFTER_SECONDS            = tostring(var.retry_after_seconds)
    _MAX_INSTANCES                  = tostring(var.max_instances)
    _MIN_INSTANCES                  = tostring(var.min_instances)
    _CONCURRENCY                    = tostring(var.concurrency)
    _CPU                            = var.function_cpu
    _MEMORY                         = var.function_memory
    _TIMEOUT                        = "${var.function_timeout_seconds}s"
  }

  build_substitutions_flag = join(",", [for key in sort(keys(local.build_substitutions)) : "${key}=${local.build_substitutions[key]}"])
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

  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled["storage.googleapis.com"]]
}

# People (or CI identities) allowed to run the pipeline by hand: start builds, run them as the
# deployer, and stage sources.
resource "google_project_iam_member" "submitter_builds" {
  # checkov:skip=CKV_GCP_49:Starting builds is the purpose of this opt-in grant (empty by default); which identity a build runs as is limited by the actAs grant on the deployer alone. In projects that still have the legacy Cloud Build service account builds could also run as it, so disable its default grants there.
  for_each = toset(var.build_submitters)

  project = var.project_id
  role    = "roles/cloudbuild.builds.editor"
  member  = each.value
}

resource "google_service_account_iam_member" "submitter_acts_as_deployer" {
  for_each = toset(var.build_submitters)

  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}

resource "google_storage_bucket_iam_member" "submitter_stages_sources" {
  for_each = toset(var.build_submitters)

  bucket = google_storage_bucket.build_sources.name
  role   = "roles/storage.objectAdmin"
  member = each.value
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
