"""A local stand-in for the Pub/Sub Cloud Storage subscription, which the Pub/Sub emulator
does not have: Avro objects in the documented layout (``write_metadata``), written to a bucket.

Used by the tests and the local demo of ``audit verify``; production writes the archive with
the subscription in terraform/evidence.tf.
"""

from __future__ import annotations

import io
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fastavro

# The fields Pub/Sub writes with write_metadata: subscription name, message id and publish
# time in their own fields, everything else but the data (the ordering key too) in attributes.
ARCHIVE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "PubsubMessage",
    "fields": [
        {"name": "subscription_name", "type": "string"},
        {"name": "message_id", "type": "string"},
        {"name": "publish_time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "attributes", "type": {"type": "map", "values": "string"}},
        {"name": "data", "type": "bytes"},
    ],
}


@dataclass(frozen=True)
class MessageToArchive:
    message_id: str
    publish_time: datetime
    attributes: Mapping[str, str]
    data: bytes


def avro_object(subscription: str, messages: Iterable[MessageToArchive]) -> bytes:
    """One archive object's bytes."""
    buffer = io.BytesIO()
    fastavro.writer(
        buffer,
        fastavro.parse_schema(ARCHIVE_SCHEMA),
        (
            {
                "subscription_name": subscription,
                "message_id": message.message_id,
                "publish_time": message.publish_time,
                "attributes": dict(message.attributes),
                "data": message.data,
            }
            for message in messages
        ),
    )
    return buffer.getvalue()


def object_name(prefix: str, now: datetime) -> str:
    """``<prefix><UTC time>_<random>.avro``, like the subscription's default file names."""
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"{prefix}{stamp}_{uuid.uuid4().hex[:12]}.avro"


def write_object(
    project: str,
    bucket: str,
    name: str,
    messages: Iterable[MessageToArchive],
    *,
    subscription: str = "projects/local/subscriptions/archive",
) -> str:
    """Upload one archive object (the bucket is created if missing); return its gs:// URI."""
    import google.cloud.storage as storage  # noqa: PLR0402 (mypy: untyped namespace)
    from google.api_core import exceptions

    client = storage.Client(project=project)
    try:
        target = client.create_bucket(bucket)
    except exceptions.Conflict:
        target = client.bucket(bucket)
    target.blob(name).upload_from_string(
        avro_object(subscription, messages), content_type="application/octet-stream"
    )
    return f"gs://{bucket}/{name}"


def drain_subscription(project: str, subscription: str) -> list[MessageToArchive]:
    """Pull and acknowledge everything waiting on a (local) subscription, with publish times."""
    import google.cloud.pubsub_v1 as pubsub_v1  # noqa: PLR0402 (mypy: untyped namespace)

    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, subscription)
    drained: list[MessageToArchive] = []
    try:
        while True:
            with warnings.catch_warnings():
                # The emulator honours it; without it a pull on an empty queue blocks.
                warnings.simplefilter("ignore", DeprecationWarning)
                response = subscriber.pull(
                    request={"subscription": path, "max_messages": 100, "return_immediately": True},
                    timeout=10,
                )
            received = list(response.received_messages)
            if not received:
                return drained
            for item in received:
                message = item.message
                drained.append(
                    MessageToArchive(
                        message.message_id,
                        message.publish_time.astimezone(UTC),
                        dict(message.attributes),
                        bytes(message.data),
                    )
                )
            subscriber.acknowledge(
                request={"subscription": path, "ack_ids": [item.ack_id for item in received]}
            )
    finally:
        subscriber.close()
