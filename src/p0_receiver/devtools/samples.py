"""Sample P0 deliveries: the vendor's documented example, byte for byte, and a request event."""

from __future__ import annotations

# The example body from P0's custom-notifier documentation, compact as JSON.stringify()
# writes it: the form whose length matches the docs' Content-Length (568).
PREAPPROVAL_CREATED = (
    b'{"id":"my-notifier-service","name":"My Notifier Service","eventType":"preapproval-created",'
    b'"data":{"id":"07ZmVeUxSc4LyhrGhlzK","type":"ssh","access":"session","permission":{"name":"demo-node-1",'
    b'"description":"sudo SSH access to demo-node-1 in AWS account Dev Stack"},"startsAt":782735400000,'
    b'"endsAt":782735400000,"createdAt":782735400000,"principal":"john.smith@p0.dev","approver":{"id":"john.smith@p0.dev",'
    b'"name":"John Smith","email":"john.smith@p0.dev","approvalTimestamp":782735400000,'
    b'"approvalSource":"webapp"},"reason":"Need to give a big customer a fancy demo"}}'
)

# P0 has not published request-event bodies; this follows the fields its CLI models for an
# access request (inferred, not confirmed) so the defensive path is exercised end to end.
REQUEST_APPROVED = b"""{
  "id": "my-notifier-service",
  "name": "My Notifier Service",
  "eventType": "request-approved",
  "data": {
    "id": "Fh3kQ9sLw2ZtR8yPbN1c",
    "type": "gcloud",
    "access": "role",
    "status": "APPROVED",
    "requestor": "jane.doe@p0.dev",
    "principal": "jane.doe@p0.dev",
    "permission": {
      "name": "roles/cloudsql.client on prod-db",
      "description": "Cloud SQL Client on project prod-db"
    },
    "reason": "Investigate incident INC-4711",
    "requestedTimestamp": 782735100000,
    "lastUpdatedTimestamp": 782735400000,
    "approvalDetails": {
      "approvalSource": "slack",
      "approvedTimestamp": 782735400000,
      "name": "John Smith",
      "email": "john.smith@p0.dev"
    }
  }
}"""

SAMPLES: dict[str, bytes] = {
    "preapproval-created": PREAPPROVAL_CREATED,
    "request-approved": REQUEST_APPROVED,
}
