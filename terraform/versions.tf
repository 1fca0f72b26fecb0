terraform {
  # Variable validations only reference their own variable, so 1.5 is enough.
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
