"""Pub/Sub adapter: publish one message with one synchronous, bounded RPC.

The handwritten client batches on a timer and resolves a future from a commit thread, and its
default retry keeps a "failed" publish going in the background for minutes. A request publishes
exactly one message and waits for it, so this calls the generated API client's ``Publish`` RPC
directly: when it returns the message is stored, and when it raises, nothing is left running.
The request is built as plain protobuf and wrapped (proto-plus's ``wrap``), which skips the
per-field marshalling of the attributes map on every delivery.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.api_core import exceptions as google_exceptions
from google.api_core.retry import Retry, if_exception_type
from google.pubsub_v1 import PublisherClient, PublishRequest, PubsubMessage
from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

from p0_receiver.adapters.google_errors import translated

_PublishRequestPb = PublishRequest.pb()
_PubsubMessagePb = PubsubMessage.pb()
# The codes the Pub/Sub client libraries retry a publish on (its service config).
_RETRYABLE = if_exception_type(
    google_exceptions.Aborted,
    google_exceptions.Cancelled,
    google_exceptions.DeadlineExceeded,
    google_exceptions.InternalServerError,
    google_exceptions.ResourceExhausted,
    google_exceptions.ServiceUnavailable,
    google_exceptions.Unknown,
)


def publisher_client() -> PublisherClient:
    """The generated Publisher API client (the emulator when PUBSUB_EMULATOR_HOST is set)."""
    return PublisherClient()


def connect_channel(client: PublisherClient, timeout_seconds: float) -> bool:
    """Open the client's connection now; ``False`` if not in time (see the Firestore one)."""
    transport = client.transport
    if not isinstance(transport, PublisherGrpcTransport):
        return True  # a REST transport has no connection to open ahead
    try:
        grpc.channel_ready_future(transport.grpc_channel).result(timeout=timeout_seconds)
    except grpc.FutureTimeoutError:
        return False
    return True


class PubSubPublisher:
    """Publishes verbatim bodies with attributes to one topic, within a time budget."""

    def __init__(self, client: PublisherClient, topic_path: str, timeout_seconds: float) -> None:
        self._client = client
        self._topic_path = topic_path
        self._timeout = timeout_seconds
        self._retry = Retry(
            predicate=_RETRYABLE,
            initial=0.05,
            maximum=1.0,
            multiplier=2.0,
            timeout=timeout_seconds,
        )

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        request = _PublishRequestPb(
            topic=self._topic_path,
            messages=[_PubsubMessagePb(data=data, attributes=attributes)],
        )
        with translated("Pub/Sub", "publish_failed"):
            response = self._client.publish(
                request=PublishRequest.wrap(request),
                retry=self._retry,
                timeout=self._timeout,
            )
        (message_id,) = response.message_ids
        return str(message_id)
