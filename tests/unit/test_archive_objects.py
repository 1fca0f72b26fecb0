"""Reading archive objects: the documented Avro layout of a Cloud Storage subscription with
metadata is read back exactly; anything else is refused, naming the object."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import fastavro
import pytest

from p0_receiver.adapters.archive import read_messages
from p0_receiver.core.errors import ArchiveFormatError
from p0_receiver.devtools.archive import MessageToArchive, avro_object
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED

SOURCE = "gs://archive/events/2026-11-29T12:00:00+0000_abc.avro"
PUBLISHED = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


def test_the_documented_layout_reads_back_exactly() -> None:
    attributes = {"eventId": "e1", "eventType": "preapproval-created", "replay": "true"}
    raw = avro_object(
        "projects/p/subscriptions/s",
        [MessageToArchive("42", PUBLISHED, attributes, PREAPPROVAL_CREATED)],
    )
    (message,) = read_messages(io.BytesIO(raw), SOURCE)
    assert (message.message_id, message.publish_time, message.data, message.source) == (
        "42",
        PUBLISHED,
        PREAPPROVAL_CREATED,
        SOURCE,
    )
    assert message.attributes == attributes


def test_microseconds_without_the_logical_type_are_read_too() -> None:
    schema = {
        "type": "record",
        "name": "PubsubMessage",
        "fields": [
            {"name": "subscription_name", "type": "string"},
            {"name": "message_id", "type": "string"},
            {"name": "publish_time", "type": "long"},
            {"name": "attributes", "type": {"type": "map", "values": "string"}},
            {"name": "data", "type": "bytes"},
        ],
    }
    buffer = io.BytesIO()
    micros = int(PUBLISHED.timestamp() * 1_000_000)
    fastavro.writer(
        buffer,
        fastavro.parse_schema(schema),
        [
            {
                "subscription_name": "s",
                "message_id": "1",
                "publish_time": micros,
                "attributes": {},
                "data": b"{}",
            }
        ],
    )
    (message,) = read_messages(io.BytesIO(buffer.getvalue()), SOURCE)
    assert message.publish_time == PUBLISHED


def test_an_object_written_without_metadata_is_refused() -> None:
    # What the subscription writes when write_metadata is off: the data alone.
    schema = {"type": "record", "name": "M", "fields": [{"name": "data", "type": "bytes"}]}
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), [{"data": b"{}"}])
    with pytest.raises(ArchiveFormatError) as refused:
        list(read_messages(io.BytesIO(buffer.getvalue()), SOURCE))
    assert SOURCE in str(refused.value)
    assert "missing message_id, publish_time, attributes" in str(refused.value)
    assert "write_metadata = true" in str(refused.value)


def test_an_object_that_is_not_avro_is_refused() -> None:
    with pytest.raises(ArchiveFormatError, match="is not an archive object"):
        list(read_messages(io.BytesIO(b'{"not": "avro"}'), SOURCE))
