# Event fan-out. Message data is the verified P0 body byte for byte; attributes (eventId,
# eventType, notifierId, objectId, principal, receivedAt, schemaVersion, replay) are the public
# contract subscribers filter and dedupe on.

resource "google_pubsub_topic" "events" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption at rest. Messages carry access-request metadata already kept in Firestore with the same default encryption; adopting CMEK is an organisation-wide key-management decision, not this module's.
  project = var.project_id
  name    = "${var.name_prefix}-events"

  # Kept after delivery so any subscription can seek back and replay a window of events.
  message_retention_duration = var.topic_message_retention

  depends_on = [google_project_service.enabled["pubsub.googleapis.com"]]
}

# Messages a subscription could not deliver after max_delivery_attempts land here.
resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83:Same data and the same encryption decision as the events topic (Google-managed keys).
  project                    = var.project_id
  name                       = "${var.name_prefix}-events-dead-letter"
  message_retention_duration = "2678400s"

  depends_on = [google_project_service.enabled["pubsub.googleapis.com"]]
}

# A topic without a subscription drops what it receives: this one keeps dead letters for
# inspection and re-publishing.
resource "google_pubsub_subscription" "dead_letter" {
  # checkov:skip=CKV2_P0R_5:This subscription is the dead-letter store itself; dead-lettering it again would only move messages in a circle.
  project = var.project_id
  name    = "${var.name_prefix}-events-dead-letter"
  topic   = google_pubsub_topic.dead_letter.id

  message_retention_duration = "604800s"
  retain_acked_messages      = true
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

# Template for a real subscriber: one event type, bounded retries, dead-lettering.
resource "google_pubsub_subscription" "example" {
  count = var.create_example_subscription ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-events-${var.example_subscription_event_type}"
  topic   = google_pubsub_topic.events.id

  filter = "attributes.eventType = \"${var.example_subscription_event_type}\""

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_pubsub_topic_iam_member.pubsub_agent_dead_letter_publisher,
  ]
}

# Dead-lettering is done by the Pub/Sub service agent: it must publish to the dead-letter topic
# and acknowledge on the source subscription.
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_example_subscriber" {
  count = var.create_example_subscription ? 1 : 0

  project      = var.project_id
  subscription = google_pubsub_subscription.example[0].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
