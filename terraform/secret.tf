# P0's public key(s): PEM blocks or a JWKS, added out of band with
# `gcloud secrets versions add` (docs/deploy.md, "Put P0's public key into the secret"): key
# material never enters Terraform state.
# Rotation = a version holding old and new keys, a redeploy, then a version with only the new.

resource "google_secret_manager_secret" "p0_public_keys" {
  project   = var.project_id
  secret_id = var.p0_public_keys_secret_id != "" ? var.p0_public_keys_secret_id : "${var.name_prefix}-p0-public-keys"

  replication {
    dynamic "auto" {
      for_each = length(var.secret_replica_locations) == 0 ? [1] : []
      content {}
    }

    dynamic "user_managed" {
      for_each = length(var.secret_replica_locations) == 0 ? [] : [1]
      content {
        dynamic "replicas" {
          for_each = var.secret_replica_locations
          content {
            location = replicas.value
          }
        }
      }
    }
  }

  depends_on = [google_project_service.enabled["secretmanager.googleapis.com"]]
}
