terraform {
  # 1.5+ for `check`-free validation functions used in variables.tf; tested with 1.11.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.20.0, < 7.0.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  # Every resource carries these labels where the API supports them.
  default_labels = local.labels
}
