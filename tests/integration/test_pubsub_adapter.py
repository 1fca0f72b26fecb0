"""The Pub/Sub adapter against the emulator behind a link that can be cut."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from p0_receiver.adapters.pubsub import PubSubPublisher, publisher_client
from p0_receiver.core.errors import DownstreamUnavailableError
from tests.conftest import Stack
from tests.faults import SwitchableProxy, switchable_proxy

pytestmark = pytest.mark.integration

# The client's default retry lands such a message about 3 s after the link returns (measured
# with PublisherOptions() in place of the bounded retry); this window is well past that.
LATE_LANDING_WINDOW_SECONDS = 8


@pytest.fixture
def link(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[SwitchableProxy]:
    with switchable_proxy(stack.emulator_env["PUBSUB_EMULATOR_HOST"]) as proxy:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", proxy.address)  # for the client under test
        yield proxy


def test_publish_succeeds_and_returns_the_message_id(stack: Stack, link: SwitchableProxy) -> None:
    link.up()
    publisher = PubSubPublisher(
        publisher_client(), f"projects/{stack.project}/topics/{stack.topic}", 2
    )
    message_id = publisher.publish(b'{"x":1}', {"eventId": "e1"})
    (message,) = stack.messages()
    assert (message.message_id, message.data, message.attributes) == (
        message_id,
        b'{"x":1}',
        {"eventId": "e1"},
    )


def test_a_publish_reported_failed_never_lands_later(stack: Stack, link: SwitchableProxy) -> None:
    publisher = PubSubPublisher(
        publisher_client(), f"projects/{stack.project}/topics/{stack.topic}", 1
    )
    started = time.monotonic()
    with pytest.raises(DownstreamUnavailableError) as caught:
        publisher.publish(f"lost-{uuid.uuid4()}".encode(), {"eventId": "e1"})
    assert caught.value.reason == "publish_failed"
    assert time.monotonic() - started < 6  # retry budget 1 s + 2 s of grace on the wait

    link.up()  # Pub/Sub is reachable again at the address the client dials
    time.sleep(LATE_LANDING_WINDOW_SECONDS)
    assert stack.messages() == []
