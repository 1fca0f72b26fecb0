terraform {
  # 1.9: variable validations may refer to other variables (concurrency needs function_cpu).
  required_version = ">= 1.9.0"

  # The lower bounds are the versions scripts/check_provider_schema.py checks this module
  # against (requirements-provider-schema.txt), so nothing older can be picked.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50.0, < 7.0.0"
    }
    # Only for google_project_service_identity, which the GA provider does not have.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.50.0, < 7.0.0"
    }
    # time_sleep: a new log-based metric is not queryable by alert policies for a while.
    time = {
      source  = "hashicorp/time"
      version = ">= 0.13.1, < 1.0.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  # Every resource carries these labels where the API supports them.
  default_labels = local.labels
}

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}
