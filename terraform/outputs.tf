output "webhook_url" {
  description = "Paste into P0 (Integrations > Notifier > Custom Notifier > Webhook URL). Live after the first Cloud Build deploy."
  value       = local.webhook_url
}

output "function_name" {
  description = "Name of the function Cloud Build deploys (also its Cloud Run service name)."
  value       = local.function_name
}

output "region" {
  description = "Region of the function and of Cloud Build runs."
  value       = var.region
}

output "project_id" {
  description = "Project hosting the receiver."
  value       = var.project_id
}

output "pubsub_topic" {
  description = "Topic every verified P0 event is published to (PUBSUB_TOPIC)."
  value       = google_pubsub_topic.events.name
}

output "pubsub_topic_id" {
  description = "Fully qualified topic name, for subscribers in other projects."
  value       = google_pubsub_topic.events.id
}

output "dead_letter_topic" {
  description = "Topic receiving messages subscriptions could not deliver."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription" {
  description = "Pull subscription holding dead-lettered messages for inspection."
  value       = google_pubsub_subscription.dead_letter.id
}

output "example_subscription" {
  description = "The filtered example subscription, if created."
  value       = var.create_example_subscription ? google_pubsub_subscription.example[0].id : null
}

output "bigquery_table" {
  description = "BigQuery table receiving every event, if enabled (PROJECT.DATASET.TABLE)."
  value       = var.enable_bigquery_subscription ? "${var.project_id}.${google_bigquery_dataset.events[0].dataset_id}.${google_bigquery_table.events[0].table_id}" : null
}

output "firestore_database" {
  description = "Firestore database of the audit log (FIRESTORE_DATABASE)."
  value       = local.audit_database
}

output "firestore_collection" {
  description = "Audit-log collection (FIRESTORE_COLLECTION)."
  value       = var.firestore_collection
}

output "firestore_token_collection" {
  description = "Token-replay ledger collection (FIRESTORE_TOKEN_COLLECTION)."
  value       = var.firestore_token_collection
}

output "p0_public_keys_secret" {
  description = "Secret to add P0's public key(s) to: gcloud secrets versions add SECRET --data-file=..."
  value       = google_secret_manager_secret.p0_public_keys.secret_id
}

output "runtime_service_account" {
  description = "Identity the function runs as."
  value       = google_service_account.runtime.email
}

output "deployer_service_account" {
  description = "Identity Cloud Build runs cloudbuild.yaml as (gcloud builds submit --service-account)."
  value       = google_service_account.deployer.id
}

output "build_source_bucket" {
  description = "Bucket for sources staged by manual runs (gcloud builds submit --gcs-source-staging-dir)."
  value       = google_storage_bucket.build_sources.name
}

output "cloud_build_substitutions" {
  description = "The exact --substitutions value for cloudbuild.yaml (`;`-separated with gcloud's ^;^ prefix)."
  value       = local.build_substitutions_flag
}

output "cloud_build_substitutions_map" {
  description = "The same substitutions as a map (what the trigger passes)."
  value       = local.build_substitutions
}

output "deploy_command" {
  description = "Pasteable manual deploy, run from the repository root. Submitters read the same text from deploy_command_url."
  value       = local.deploy_command
}

output "deploy_command_url" {
  description = "Where submitters without state access read the deploy command: gcloud storage cat URL."
  value       = "gs://${google_storage_bucket.build_sources.name}/${google_storage_bucket_object.deploy_command.name}"
}
