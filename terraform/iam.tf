# Identities and least-privilege IAM. No basic roles (owner/editor/viewer) anywhere: a test
# and checkov enforce it. Publisher and secret accessor are granted on the resource only.

# ---------------------------------------------------------------------------------------------
# Runtime identity of the function
# ---------------------------------------------------------------------------------------------

resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-receiver"
  display_name = "P0 receiver (function runtime)"
  description  = "Runs the P0 webhook receiver: writes the audit log, publishes events, reads P0's public key."

  depends_on = [google_project_service.enabled["iam.googleapis.com"]]
}

# Exactly the Firestore permissions the receiver's calls need (src/p0_receiver/adapters/
# firestore.py), per Firestore's table of required permissions per API method:
#   document create() and transaction create()  commit, exists=false   datastore.entities.create
#   document update() and transaction update()  commit, exists=true    datastore.entities.update
#   document get(), reads in a transaction      batchGet               datastore.entities.get
#   every query (the redrive's scan of records  runQuery               datastore.entities.get,
#   left received, the quarantine's per-token                          datastore.entities.list
#   bound, the audit views)
#   @transactional                              beginTransaction, rollback, commit without
#                                               writes                 datastore.databases.get
# No delete: the function's identity cannot remove an audit record (roles/datastore.user could).
resource "google_project_iam_custom_role" "runtime_firestore" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_receiver_firestore_writer"
  title       = "P0 receiver Firestore writer (no delete)"
  description = "Create, read and update documents and run transactions; never delete."
  permissions = [
    "datastore.databases.get",
    "datastore.entities.create",
    "datastore.entities.get",
    "datastore.entities.list",
    "datastore.entities.update",
  ]

  depends_on = [google_project_service.enabled["iam.googleapis.com"]]
}

# Firestore has no collection-level IAM; the narrowest grant is one database, through an IAM
# condition on the database's resource name.
resource "google_project_iam_member" "runtime_firestore" {
  project = var.project_id
  role    = google_project_iam_custom_role.runtime_firestore.id
  member  = google_service_account.runtime.member

  condition {
    title       = "${local.firestore_database}-only"
    description = "Read/write documents in the receiver's Firestore database only."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${local.firestore_database}\""
  }

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

resource "google_project_iam_member" "runtime_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.runtime.member

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

# Only with tracing on: the spans' export to Cloud Trace (cloudtrace.traces.patch).
resource "google_project_iam_member" "runtime_trace_agent" {
  count = var.tracing == "on" ? 1 : 0

  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = google_service_account.runtime.member

  depends_on = [
    google_project_service.enabled["cloudresourcemanager.googleapis.com"],
    google_project_service.enabled["cloudtrace.googleapis.com"],
  ]
}

resource "google_pubsub_topic_iam_member" "runtime_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.runtime.member
}

resource "google_secret_manager_secret_iam_member" "runtime_key_accessor" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.p0_public_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.runtime.member
}

# ---------------------------------------------------------------------------------------------
# Cloud Build: the deployer runs cloudbuild.yaml; the function builder builds the source
# ---------------------------------------------------------------------------------------------

resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-deployer"
  display_name = "P0 receiver deployer (Cloud Build)"
  description  = "Runs cloudbuild.yaml: tests, then creates/updates the receiver function."

  depends_on = [google_project_service.enabled["iam.googleapis.com"]]
}

resource "google_service_account" "function_builder" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-fn-build"
  display_name = "P0 receiver function builder"
  description  = "Builds the function's container from source during `gcloud functions deploy`."

  depends_on = [google_project_service.enabled["iam.googleapis.com"]]
}

# Create and update the receiver function only. The role also holds permissions on operations
# and locations (waiting for the deploy, generating the upload URL), which have other resource
# types: the condition narrows what is a function to the receiver and leaves the rest alone.
# Where a service does not evaluate resource attributes, resource.type is empty and the grant is
# the plain role; docs/deploy.md says so.
resource "google_project_iam_member" "deployer_functions" {
  project = var.project_id
  role    = "roles/cloudfunctions.developer"
  member  = google_service_account.deployer.member

  condition {
    title       = "${local.function_name}-only"
    description = "Functions: the receiver only. Operations and locations: as the role grants."
    expression  = "resource.type != \"cloudfunctions.googleapis.com/Function\" || resource.name == \"${local.function_resource_name}\""
  }

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

# `--allow-unauthenticated` sets the invoker policy of the function's Cloud Run service, which
# cloudfunctions.developer cannot do. This custom role adds only the IAM-policy permissions.
resource "google_project_iam_custom_role" "invoker_policy_admin" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_receiver_invoker_policy"
  title       = "P0 receiver invoker policy admin"
  description = "Read and set the invoker IAM policy of the receiver function (for --allow-unauthenticated)."
  permissions = [
    "cloudfunctions.functions.getIamPolicy",
    "cloudfunctions.functions.setIamPolicy",
    "run.services.getIamPolicy",
    "run.services.setIamPolicy",
  ]

  depends_on = [google_project_service.enabled["iam.googleapis.com"]]
}

resource "google_project_iam_member" "deployer_invoker_policy" {
  project = var.project_id
  role    = google_project_iam_custom_role.invoker_policy_admin.id
  member  = google_service_account.deployer.member

  # Every permission of the role is on a function or a Cloud Run service: the receiver's only.
  condition {
    title       = "${local.function_name}-invoker-policy-only"
    description = "Read and set the IAM policy of the receiver function and its Cloud Run service only."
    expression  = "(resource.type != \"cloudfunctions.googleapis.com/Function\" || resource.name == \"${local.function_resource_name}\") && (resource.type != \"run.googleapis.com/Service\" || resource.name == \"${local.run_service_resource_name}\")"
  }

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

# Build logs go to Cloud Logging only (cloudbuild.yaml sets CLOUD_LOGGING_ONLY).
resource "google_project_iam_member" "deployer_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.deployer.member

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

# gcloud checks that the APIs it calls are enabled; consumer can check, never enable.
resource "google_project_iam_member" "deployer_service_usage" {
  project = var.project_id
  role    = "roles/serviceusage.serviceUsageConsumer"
  member  = google_service_account.deployer.member

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

# The deploy attaches these two identities to the function (actAs), nothing else.
resource "google_service_account_iam_member" "deployer_acts_as_runtime" {
  service_account_id = google_service_account.runtime.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deployer.member
}

resource "google_service_account_iam_member" "deployer_acts_as_builder" {
  service_account_id = google_service_account.function_builder.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deployer.member
}

# Metadata only (versions exist and are enabled): the pipeline fails early and clearly when
# nobody has added P0's key yet. The deployer can never read the key itself.
resource "google_secret_manager_secret_iam_member" "deployer_key_viewer" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.p0_public_keys.secret_id
  role      = "roles/secretmanager.viewer"
  member    = google_service_account.deployer.member
}

# Manual runs stage their source in this bucket (gcloud builds submit --gcs-source-staging-dir).
resource "google_storage_bucket_iam_member" "deployer_reads_sources" {
  bucket = google_storage_bucket.build_sources.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.deployer.member
}

# The function builder: what Cloud Run functions documents for a user-specified build account.
resource "google_project_iam_member" "builder_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.function_builder.member

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

# Push the function's image to the region's gcf-artifacts repository only.
resource "google_project_iam_member" "builder_artifact_writer" {
  project = var.project_id
  role    = "roles/artifactregistry.writer"
  member  = google_service_account.function_builder.member

  condition {
    title       = "gcf-artifacts-only"
    description = "Artifact Registry: the Cloud Run functions repository of this region (and what it holds) only."
    expression  = "resource.service != \"artifactregistry.googleapis.com\" || resource.name.startsWith(\"${local.artifact_repository_name}\")"
  }

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}

# Only the buckets Cloud Run functions uploads this region's function sources to.
resource "google_project_iam_member" "builder_reads_function_sources" {
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = google_service_account.function_builder.member

  condition {
    title       = "function-sources-only"
    description = "Cloud Run functions source buckets of this project and region."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}\")"
  }

  depends_on = [google_project_service.enabled["cloudresourcemanager.googleapis.com"]]
}
