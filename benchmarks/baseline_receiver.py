"""The obvious receiver: the same contract written the straightforward way, as a yardstick.

Verify the bearer JWT (pinned ES256 key, five claims), parse the envelope, hash the canonical
body, then four sequential round trips: ledger ``create``, audit ``create``, publish and wait,
mark published. Clients at import time, no lazy loading, no batching of Firestore writes.
Only ``benchmarks/versus_baseline.py`` serves it; it is not part of the product.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
import functions_framework
import google.cloud.pubsub_v1 as pubsub_v1  # noqa: PLR0402 (mypy: untyped namespace)
import jwt
import rfc8785
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from google.api_core import exceptions as google_exceptions
from google.cloud import firestore
from pydantic import BaseModel, ValidationError

PROJECT = os.environ["GOOGLE_CLOUD_PROJECT"]
KEY = load_pem_public_key(os.environ["P0_PUBLIC_KEYS"].encode())
DB = firestore.Client(project=PROJECT)
# The same publisher tuning as the product (a batch of one is sent at once): the comparison is
# about the request path, not about the client's 10 ms batching timer.
PUBLISHER = pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_messages=1))
TOPIC = f"projects/{PROJECT}/topics/{os.environ['PUBSUB_TOPIC']}"


class Envelope(BaseModel):
    id: str
    name: str
    eventType: str  # noqa: N815
    data: dict[str, Any]


def _error(status: int, code: str) -> flask.Response:
    return flask.Response(
        json.dumps({"error": {"code": code}}), status=status, mimetype="application/json"
    )


@functions_framework.http
def receive(request: flask.Request) -> flask.Response:
    if request.method != "POST":
        return _error(405, "method_not_allowed")
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        claims = jwt.decode(
            token,
            KEY,  # type: ignore[arg-type]
            algorithms=["ES256"],
            options={"require": ["exp", "iat", "iss", "aud", "sub"], "verify_aud": False},
        )
    except jwt.InvalidTokenError:
        return _error(401, "unauthenticated")
    body = request.get_data()
    try:
        envelope = Envelope.model_validate_json(body)
    except ValidationError:
        return _error(422, "schema_violation")
    event_id = hashlib.sha256(rfc8785.dumps(json.loads(body))).hexdigest()
    fingerprint = hashlib.sha256(token.encode()).hexdigest()
    now = datetime.now(tz=UTC)
    try:
        DB.collection("p0_token_fingerprints").document(fingerprint).create(
            {
                "eventId": event_id,
                "expireAt": now + timedelta(seconds=claims["exp"] - claims["iat"]),
            }
        )
    except google_exceptions.AlreadyExists:
        first = DB.collection("p0_token_fingerprints").document(fingerprint).get().get("eventId")
        if first != event_id:
            return _error(401, "unauthenticated")
    audit = DB.collection("p0_notifications").document(event_id)
    try:
        audit.create(
            {
                "eventType": envelope.eventType,
                "notifierId": envelope.id,
                "body": body,
                "receivedAt": now,
                "publishStatus": "received",
            }
        )
    except google_exceptions.AlreadyExists:
        return flask.Response(
            json.dumps({"status": "duplicate", "eventId": event_id}), mimetype="application/json"
        )
    message_id = PUBLISHER.publish(TOPIC, body, eventId=event_id).result(timeout=10)
    audit.update({"publishStatus": "published", "messageId": message_id, "publishedAt": now})
    return flask.Response(
        json.dumps({"status": "accepted", "eventId": event_id}), mimetype="application/json"
    )
