# Root module: everything AROUND the P0 receiver function.
#
# Ownership split: Terraform provisions the APIs, identities, IAM, topic, Firestore database,
# secret, metrics and alerts; Cloud Build (cloudbuild.yaml) creates and updates the function
# itself with `gcloud functions deploy --gen2`, reading its flags from the outputs of this
# module. Terraform never declares the function, so the two tools never fight over it.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  labels = merge({ app = "p0-receiver", managed-by = "terraform" }, var.labels)

  function_name = "${var.name_prefix}-receiver"
  # Gen2 functions keep the 1st gen style URL; it is deterministic, so it can be an output
  # before the first deploy and pasted into P0 once.
  webhook_url = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.function_name}"

  firestore_database = coalesce(var.firestore_database, "${var.name_prefix}-audit")
  firestore_location = coalesce(var.firestore_location, var.region)

  # Resource names as IAM conditions see them (iam.tf scopes the deploy roles to these).
  function_resource_name    = "projects/${var.project_id}/locations/${var.region}/functions/${local.function_name}"
  run_service_resource_name = "projects/${var.project_id}/locations/${var.region}/services/${local.function_name}"
  # Cloud Run functions pushes the images it builds to this repository of the region.
  artifact_repository_name = "projects/${var.project_id}/locations/${var.region}/repositories/gcf-artifacts"

  # Created by google_project_service_identity below, so IAM bindings never name an agent
  # that does not exist yet on a fresh project.
  pubsub_service_agent = google_project_service_identity.pubsub.member

  required_apis = toset(concat(
    [
      "artifactregistry.googleapis.com",
      "cloudbuild.googleapis.com",
      "cloudfunctions.googleapis.com",
      "cloudresourcemanager.googleapis.com",
      "cloudscheduler.googleapis.com",
      "firestore.googleapis.com",
      "iam.googleapis.com",
      "logging.googleapis.com",
      "monitoring.googleapis.com",
      "pubsub.googleapis.com",
      "run.googleapis.com",
      "secretmanager.googleapis.com",
      "storage.googleapis.com",
    ],
    var.enable_bigquery_subscription ? ["bigquery.googleapis.com"] : [],
    var.tracing == "on" ? ["cloudtrace.googleapis.com"] : [],
  ))
}

# Every resource that calls one of these APIs depends on its entry here, directly or through a
# reference (tests/infra/test_terraform.py walks the graph), so a fresh project applies at once.
resource "google_project_service" "enabled" {
  for_each = local.required_apis

  project = var.project_id
  service = each.value

  # Other workloads in the project may rely on these APIs: never disable them on destroy.
  disable_on_destroy         = false
  disable_dependent_services = false
}

# The Pub/Sub service agent is created lazily by Google, often only on first use; binding IAM
# to it before then fails with "Service account ... does not exist". This creates it now.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project = var.project_id
  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.enabled["pubsub.googleapis.com"]]
}
