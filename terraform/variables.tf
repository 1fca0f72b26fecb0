# ---------------------------------------------------------------------------------------------
# Where and what to name things
# ---------------------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project that hosts the receiver (becomes GOOGLE_CLOUD_PROJECT)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 characters: lowercase letters, digits, hyphens), not a name or number."
  }
}

variable "region" {
  description = "Region of the function, Cloud Build trigger and (unless firestore_location is set) the Firestore database."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Cloud region such as us-central1 or europe-west1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name. The function is named \"<prefix>-receiver\"."
  type        = string
  default     = "p0"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$|^[a-z]$", var.name_prefix))
    error_message = "name_prefix must be 1-20 characters: lowercase letters, digits and inner hyphens, starting with a letter (service account IDs are limited to 30 characters)."
  }
}

variable "labels" {
  description = "Extra labels for every resource that supports them."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# P0 token policy (P0_JWT_*): what the receiver accepts
# ---------------------------------------------------------------------------------------------

variable "p0_jwt_issuer" {
  description = "Expected `iss` claim of P0's tokens (P0_JWT_ISSUER). Empty: the claim is still required but any value is accepted. Set it."
  type        = string
  default     = ""

  validation {
    condition     = length(var.p0_jwt_issuer) <= 512 && !can(regex("[,;'\"]", var.p0_jwt_issuer))
    error_message = "p0_jwt_issuer must be at most 512 characters without commas, semicolons or quotes (they delimit deploy substitutions)."
  }
}

variable "p0_jwt_audience" {
  description = "Expected `aud` claim of P0's tokens (P0_JWT_AUDIENCE). Empty: the claim is still required but any value is accepted. Set it."
  type        = string
  default     = ""

  validation {
    condition     = length(var.p0_jwt_audience) <= 512 && !can(regex("[,;'\"]", var.p0_jwt_audience))
    error_message = "p0_jwt_audience must be at most 512 characters without commas, semicolons or quotes (they delimit deploy substitutions)."
  }
}

variable "p0_jwt_subject" {
  description = "Expected `sub` claim of P0's tokens (P0_JWT_SUBJECT). Empty: the claim is still required but any value is accepted."
  type        = string
  default     = ""

  validation {
    condition     = length(var.p0_jwt_subject) <= 512 && !can(regex("[,;'\"]", var.p0_jwt_subject))
    error_message = "p0_jwt_subject must be at most 512 characters without commas, semicolons or quotes (they delimit deploy substitutions)."
  }
}

variable "p0_jwt_leeway_seconds" {
  description = "Clock skew tolerated on `exp`/`iat`/`nbf`, in seconds (P0_JWT_LEEWAY_SECONDS)."
  type        = number
  default     = 30

  validation {
    condition     = var.p0_jwt_leeway_seconds >= 0 && var.p0_jwt_leeway_seconds <= 300 && floor(var.p0_jwt_leeway_seconds) == var.p0_jwt_leeway_seconds
    error_message = "p0_jwt_leeway_seconds must be a whole number from 0 to 300."
  }
}

variable "p0_jwt_max_lifetime_seconds" {
  description = "Longest accepted token lifetime (`exp` - `iat`), in seconds (P0_JWT_MAX_LIFETIME_SECONDS)."
  type        = number
  default     = 3600

  validation {
    condition     = var.p0_jwt_max_lifetime_seconds >= 60 && var.p0_jwt_max_lifetime_seconds <= 86400 && floor(var.p0_jwt_max_lifetime_seconds) == var.p0_jwt_max_lifetime_seconds
    error_message = "p0_jwt_max_lifetime_seconds must be a whole number from 60 to 86400."
  }
}

variable "p0_jwt_algorithms" {
  description = "Allow-list of JWT algorithms, comma-separated, e.g. \"RS256\" or \"ES256,EdDSA\" (P0_JWT_ALGORITHMS). Empty: the algorithms of each configured key's type."
  type        = string
  default     = ""

  validation {
    condition     = var.p0_jwt_algorithms == "" || can(regex("^(RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512|EdDSA)(,(RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512|EdDSA))*$", var.p0_jwt_algorithms))
    error_message = "p0_jwt_algorithms must be empty or a comma-separated list (no spaces) of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA."
  }
}

variable "p0_token_reuse" {
  description = "What a token seen again with a different body gets (P0_TOKEN_REUSE): burst accepts and flags deterministic-signature tokens arriving within p0_token_burst_seconds of iat (P0 signs a burst of events with identical tokens), reject refuses and quarantines, accept only flags."
  type        = string
  default     = "burst"

  validation {
    condition     = contains(["burst", "reject", "accept"], var.p0_token_reuse)
    error_message = "p0_token_reuse must be burst, reject or accept."
  }
}

variable "p0_token_burst_seconds" {
  description = "Seconds after a token's iat within which a reuse counts as one P0 burst under p0_token_reuse = burst (P0_TOKEN_BURST_SECONDS)."
  type        = number
  default     = 5

  validation {
    condition     = var.p0_token_burst_seconds >= 0 && var.p0_token_burst_seconds <= 60 && floor(var.p0_token_burst_seconds) == var.p0_token_burst_seconds
    error_message = "p0_token_burst_seconds must be a whole number from 0 to 60."
  }
}

variable "p0_reject_unknown_event_types" {
  description = "Strict mode: reject event types the receiver has no model for (P0_REJECT_UNKNOWN_EVENT_TYPES). Off keeps new P0 events flowing."
  type        = bool
  default     = false
}

variable "p0_public_keys_secret_id" {
  description = "Secret Manager secret ID that holds P0's public key(s) (PEM blocks or a JWKS). Empty: \"<prefix>-p0-public-keys\". Terraform creates the secret, never its value."
  type        = string
  default     = ""

  validation {
    condition     = var.p0_public_keys_secret_id == "" || can(regex("^[A-Za-z0-9_-]{1,255}$", var.p0_public_keys_secret_id))
    error_message = "p0_public_keys_secret_id may contain only letters, digits, underscores and hyphens."
  }
}

variable "secret_replica_locations" {
  description = "Regions to pin the public-key secret's replicas to (data residency). Empty: automatic replication."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------------
# Audit log (Firestore)
# ---------------------------------------------------------------------------------------------

variable "create_firestore_database" {
  description = "Create the Firestore database. Set false to use an existing Native-mode database named firestore_database."
  type        = bool
  default     = true
}

variable "firestore_database" {
  description = "Firestore database ID (FIRESTORE_DATABASE). Null: \"<prefix>-audit\". A dedicated database keeps the audit log apart and lets IAM be scoped to it."
  type        = string
  default     = null

  validation {
    condition     = var.firestore_database == null || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$|^\\(default\\)$", var.firestore_database))
    error_message = "firestore_database must be \"(default)\" or 4-63 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "firestore_location" {
  description = "Firestore location (a region such as europe-west1 or a multi-region such as nam5, eur3). Null: the region."
  type        = string
  default     = null
}

variable "firestore_collection" {
  description = "Collection of the audit records (FIRESTORE_COLLECTION)."
  type        = string
  default     = "p0_notifications"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.firestore_collection))
    error_message = "firestore_collection must be 1-100 letters, digits, underscores or hyphens."
  }
}

variable "firestore_token_collection" {
  description = "Collection of the token-replay ledger (FIRESTORE_TOKEN_COLLECTION)."
  type        = string
  default     = "p0_token_fingerprints"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.firestore_token_collection))
    error_message = "firestore_token_collection must be 1-100 letters, digits, underscores or hyphens."
  }
}

variable "firestore_quarantine_collection" {
  description = "Collection of quarantined bodies: authentic deliveries the receiver refused (FIRESTORE_QUARANTINE_COLLECTION)."
  type        = string
  default     = "p0_quarantine"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.firestore_quarantine_collection))
    error_message = "firestore_quarantine_collection must be 1-100 letters, digits, underscores or hyphens."
  }
}

variable "quarantine_max_per_token" {
  description = "Most bodies kept in quarantine per token fingerprint; more are refused without being kept (QUARANTINE_MAX_PER_TOKEN)."
  type        = number
  default     = 10

  validation {
    condition     = var.quarantine_max_per_token >= 1 && var.quarantine_max_per_token <= 1000 && floor(var.quarantine_max_per_token) == var.quarantine_max_per_token
    error_message = "quarantine_max_per_token must be a whole number from 1 to 1000."
  }
}

variable "quarantine_retention_days" {
  description = "Days a quarantined body is kept before Firestore's TTL deletes it (QUARANTINE_RETENTION_DAYS)."
  type        = number
  default     = 30

  validation {
    condition     = var.quarantine_retention_days >= 1 && var.quarantine_retention_days <= 3650 && floor(var.quarantine_retention_days) == var.quarantine_retention_days
    error_message = "quarantine_retention_days must be a whole number from 1 to 3650."
  }
}

variable "audit_retention_days" {
  description = "Days an audit record is kept before Firestore's TTL deletes it (AUDIT_RETENTION_DAYS). 0: keep forever (no expiry field is written)."
  type        = number
  default     = 400

  validation {
    condition     = var.audit_retention_days >= 0 && var.audit_retention_days <= 36500 && floor(var.audit_retention_days) == var.audit_retention_days
    error_message = "audit_retention_days must be a whole number from 0 to 36500."
  }
}

# ---------------------------------------------------------------------------------------------
# Evidence: the write-once archive of every published message (evidence.tf)
# ---------------------------------------------------------------------------------------------

variable "archive_retention_days" {
  description = "Days every archived message is kept undeletable (the archive bucket's retention policy), after which the lifecycle rule deletes it."
  type        = number
  default     = 400

  validation {
    condition     = var.archive_retention_days >= 1 && var.archive_retention_days <= 36500 && floor(var.archive_retention_days) == var.archive_retention_days
    error_message = "archive_retention_days must be a whole number from 1 to 36500."
  }
}

variable "archive_lock_retention" {
  description = "Lock the archive's retention policy. IRREVERSIBLE: once applied, nobody can shorten or remove the policy, and the bucket cannot be deleted while it holds objects. Set it once archive_retention_days is final (docs/operate.md: Evidence for auditors)."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------------
# Event fan-out (Pub/Sub)
# ---------------------------------------------------------------------------------------------

variable "topic_message_retention" {
  description = "How long the topic keeps published messages so a subscription can seek back and replay them (10m to 31d, e.g. \"604800s\")."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.topic_message_retention)) && try(tonumber(trimsuffix(var.topic_message_retention, "s")) >= 600 && tonumber(trimsuffix(var.topic_message_retention, "s")) <= 2678400, false)
    error_message = "topic_message_retention must be seconds with an \"s\" suffix, from 600s to 2678400s (31 days)."
  }
}

variable "create_example_subscription" {
  description = "Create a pull subscription that receives only one event type, with retries and dead-lettering: a template for real subscribers."
  type        = bool
  default     = true
}

variable "example_subscription_event_type" {
  description = "P0 event type the example subscription filters on (the message's eventType attribute)."
  type        = string
  default     = "preapproval-created"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,100}$", var.example_subscription_event_type))
    error_message = "example_subscription_event_type must be an event type name such as preapproval-created."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries of a message to a subscription before it is dead-lettered (5-100)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "enable_bigquery_subscription" {
  description = "Also stream every event into a BigQuery table through a BigQuery subscription (no code)."
  type        = bool
  default     = false
}

variable "bigquery_location" {
  description = "Location of the BigQuery dataset (only with enable_bigquery_subscription). Null: the region."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Function runtime limits (passed to `gcloud functions deploy` through Cloud Build)
# ---------------------------------------------------------------------------------------------

variable "max_instances" {
  description = "Upper bound on function instances: caps cost and the blast radius of a flood of requests."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 1000 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number from 1 to 1000."
  }
}

variable "min_instances" {
  description = "Instances kept warm (0 scales to zero; 1 removes cold starts at a small constant cost)."
  type        = number
  default     = 0

  validation {
    condition     = var.min_instances >= 0 && var.min_instances <= 100 && floor(var.min_instances) == var.min_instances
    error_message = "min_instances must be a whole number from 0 to 100."
  }
}

variable "concurrency" {
  description = "Concurrent requests per instance. Above 1 requires at least 1 vCPU (function_cpu)."
  type        = number
  default     = 8

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000 && floor(var.concurrency) == var.concurrency
    error_message = "concurrency must be a whole number from 1 to 1000."
  }

  # Gen2 refuses the deploy otherwise ("concurrency > 1 requires cpu >= 1"); fail at plan time.
  validation {
    condition     = var.concurrency == 1 || tonumber(var.function_cpu) >= 1
    error_message = "concurrency above 1 needs function_cpu of at least 1: set concurrency = 1 or function_cpu >= 1."
  }
}

variable "function_cpu" {
  description = "vCPUs per instance (gcloud --cpu)."
  type        = string
  default     = "1"

  validation {
    condition     = contains(["0.083", "0.167", "0.333", "0.583", "1", "2", "4", "6", "8"], var.function_cpu)
    error_message = "function_cpu must be one of 0.083, 0.167, 0.333, 0.583, 1, 2, 4, 6, 8."
  }
}

variable "function_memory" {
  description = "Memory per instance (gcloud --memory), e.g. 512Mi."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.function_memory))
    error_message = "function_memory must look like 256Mi, 512Mi or 1Gi."
  }
}

variable "function_timeout_seconds" {
  description = "Request timeout in seconds. The receiver answers within its Firestore and publish timeouts; anything longer is a hang."
  type        = number
  default     = 30

  validation {
    condition     = var.function_timeout_seconds >= 5 && var.function_timeout_seconds <= 300 && floor(var.function_timeout_seconds) == var.function_timeout_seconds
    error_message = "function_timeout_seconds must be a whole number from 5 to 300."
  }
}

variable "max_body_bytes" {
  description = "Largest accepted request body in bytes (MAX_BODY_BYTES); bigger requests get 413 before being read."
  type        = number
  default     = 65536

  validation {
    condition     = var.max_body_bytes >= 1024 && var.max_body_bytes <= 262144 && floor(var.max_body_bytes) == var.max_body_bytes
    error_message = "max_body_bytes must be a whole number from 1024 to 262144."
  }
}

variable "firestore_timeout_seconds" {
  description = "Deadline of each Firestore call on the request path, in seconds (FIRESTORE_TIMEOUT_SECONDS)."
  type        = number
  default     = 4

  validation {
    condition     = var.firestore_timeout_seconds > 0 && var.firestore_timeout_seconds <= 10
    error_message = "firestore_timeout_seconds must be greater than 0 and at most 10."
  }
}

variable "pubsub_publish_timeout_seconds" {
  description = "Deadline of the publish on the request path, in seconds (PUBSUB_PUBLISH_TIMEOUT_SECONDS)."
  type        = number
  default     = 8

  validation {
    condition     = var.pubsub_publish_timeout_seconds > 0 && var.pubsub_publish_timeout_seconds <= 15
    error_message = "pubsub_publish_timeout_seconds must be greater than 0 and at most 15."
  }
}

variable "tracing" {
  description = "OpenTelemetry spans of each delivery, exported to Cloud Trace (TRACING): on or off. On also enables the Cloud Trace API and grants the runtime roles/cloudtrace.agent."
  type        = string
  default     = "off"

  validation {
    condition     = contains(["on", "off"], var.tracing)
    error_message = "tracing must be on or off."
  }
}

variable "retry_after_seconds" {
  description = "Retry-After sent with a 503 when Firestore or Pub/Sub is unavailable (RETRY_AFTER_SECONDS)."
  type        = number
  default     = 30

  validation {
    condition     = var.retry_after_seconds >= 1 && var.retry_after_seconds <= 3600 && floor(var.retry_after_seconds) == var.retry_after_seconds
    error_message = "retry_after_seconds must be a whole number from 1 to 3600."
  }
}

# ---------------------------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------------------------

variable "alert_email" {
  description = "E-mail address for alert notifications. Empty: no e-mail channel is created."
  type        = string
  default     = ""

  validation {
    condition     = var.alert_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be an e-mail address or empty."
  }
}

variable "alert_notification_channels" {
  description = "IDs of existing Cloud Monitoring notification channels (projects/P/notificationChannels/N) to notify as well."
  type        = list(string)
  default     = []
}

variable "rejection_alert_threshold" {
  description = "Rejected deliveries per 5 minutes, for one reason code, that raise the rejection alert. The endpoint is public, so a few unauthenticated probes are normal."
  type        = number
  default     = 20

  validation {
    condition     = var.rejection_alert_threshold >= 0
    error_message = "rejection_alert_threshold must not be negative."
  }
}

# ---------------------------------------------------------------------------------------------
# Deploy pipeline (Cloud Build)
# ---------------------------------------------------------------------------------------------

variable "enable_build_trigger" {
  description = "Create a Cloud Build trigger that runs cloudbuild.yaml on every push to build_trigger_branch."
  type        = bool
  default     = false
}

variable "build_trigger_repository" {
  description = "Cloud Build (2nd gen) repository the trigger watches: projects/P/locations/R/connections/C/repositories/NAME. Required when enable_build_trigger is true."
  type        = string
  default     = ""

  validation {
    condition     = var.build_trigger_repository == "" || can(regex("^projects/[^/]+/locations/[^/]+/connections/[^/]+/repositories/[^/]+$", var.build_trigger_repository))
    error_message = "build_trigger_repository must be projects/PROJECT/locations/REGION/connections/CONNECTION/repositories/NAME."
  }
}

variable "build_trigger_branch" {
  description = "Branch regex (RE2) whose pushes deploy."
  type        = string
  default     = "^main$"
}

variable "build_submitters" {
  description = "Principals (user:..., group:..., serviceAccount:...) allowed to run cloudbuild.yaml by hand as the deployer."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for member in var.build_submitters : can(regex("^(user|group|serviceAccount|principal|principalSet):", member))])
    error_message = "build_submitters entries must be IAM members such as user:alice@example.com or group:platform@example.com."
  }
}

variable "data_access_log_bucket_locked" {
  description = "Lock the log bucket that keeps Firestore's Data Access logs (evidence.tf): once locked, its retention can never be shortened nor the bucket deleted before its logs expire. Set false only in a throwaway project."
  type        = bool
  default     = true
}
