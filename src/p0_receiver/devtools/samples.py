"""Sample P0 deliveries: the vendor's documented example, byte for byte, a request event, and
one request's whole story (created, approved, expired) sent out of order."""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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


# --- one request's story --------------------------------------------------------------------

# P0's object ids look like Firestore auto-IDs: 20 letters and digits.
_OBJECT_ID_ALPHABET = string.ascii_letters + string.digits
_OBJECT_ID_LENGTH = 20
# The story's P0 times, counted back from when it is sent: asked for, approved four minutes
# later, expired after an hour of access (just before now: P0 reports an expiry once it happened).
_REQUESTED_AGO = timedelta(minutes=65)
_APPROVAL_DELAY = timedelta(minutes=4)
_ACCESS_LENGTH = timedelta(hours=1)


@dataclass(frozen=True)
class StoryDelivery:
    """One delivery of a story: its event type, when it happened at P0, and its body."""

    event_type: str
    occurred_at: datetime
    body: bytes


def new_object_id() -> str:
    """A fresh P0-style object id, so every story is a request of its own."""
    return "".join(secrets.choice(_OBJECT_ID_ALPHABET) for _ in range(_OBJECT_ID_LENGTH))


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def request_lifecycle(object_id: str, *, now: datetime) -> tuple[StoryDelivery, ...]:
    """created, approved, expired for one request, in the order they are sent: the approval
    first, then the creation, then the expiry (P0 documents no delivery order).

    The bodies follow ``REQUEST_APPROVED`` (inferred from P0's CLI, not confirmed);
    ``lastUpdatedTimestamp`` is each event's own time, which the receiver takes as P0's.
    """
    requested = now - _REQUESTED_AGO
    approved = requested + _APPROVAL_DELAY
    expired = approved + _ACCESS_LENGTH
    approval = {
        "approvalSource": "slack",
        "approvedTimestamp": _millis(approved),
        "name": "John Smith",
        "email": "john.smith@p0.dev",
    }

    def delivery(event_type: str, at: datetime, status: str, **fields: Any) -> StoryDelivery:
        data = {
            "id": object_id,
            "type": "gcloud",
            "access": "role",
            "status": status,
            "requestor": "jane.doe@p0.dev",
            "principal": "jane.doe@p0.dev",
            "permission": {
                "name": "roles/cloudsql.client on prod-db",
                "description": "Cloud SQL Client on project prod-db",
            },
            "reason": "Investigate incident INC-4711",
            "requestedTimestamp": _millis(requested),
            "lastUpdatedTimestamp": _millis(at),
            **fields,
        }
        envelope = {
            "id": "my-notifier-service",
            "name": "My Notifier Service",
            "eventType": event_type,
            "data": data,
        }
        return StoryDelivery(event_type, at, json.dumps(envelope, indent=2).encode())

    # Status names from P0's CLI: a new request waits in PENDING_APPROVAL.
    created = delivery("request-created", requested, "PENDING_APPROVAL")
    approval_event = delivery("request-approved", approved, "APPROVED", approvalDetails=approval)
    expiry = delivery(
        "request-expired",
        expired,
        "EXPIRED",
        approvalDetails=approval,
        expiryTimestamp=_millis(expired),
    )
    return (approval_event, created, expiry)
