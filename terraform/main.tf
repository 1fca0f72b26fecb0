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

  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  required_apis = toset(concat([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ], var.enable_bigquery_subscription ? ["bigquery.googleapis.com"] : []))
}

resource "google_project_service" "enabled" {
  for_each = local.required_apis

  project = var.project_id
  service = each.value

  # Other workloads in the project may rely on these APIs: never disable them on destroy.
  disable_on_destroy         = false
  disable_dependent_services = false
}
