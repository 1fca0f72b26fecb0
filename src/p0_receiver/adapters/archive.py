"""The archive port on Cloud Storage: Avro objects written by a Pub/Sub Cloud Storage
subscription with ``write_metadata``, streamed object by object, errors translated.

Google client types and exceptions stay in this module. The layout is Pub/Sub's documented one:
``subscription_name``, ``message_id``, ``publish_time``, ``attributes`` (ordering key
included) and ``data`` fields in each Avro record.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import fastavro
import google.cloud.storage as storage  # noqa: PLR0402 (mypy: untyped namespace)

from p0_receiver.adapters.google_errors import translated
from p0_receiver.core.errors import ArchiveFormatError
from p0_receiver.ports import ArchivedMessage, ArchiveLocation

# Each object is read through a window of this size: memory stays flat however big it is.
READ_CHUNK_BYTES = 1024 * 1024
_METADATA_FIELDS = ("message_id", "publish_time", "attributes", "data")


def storage_client(project: str) -> storage.Client:
    """A client for the project (the emulator when STORAGE_EMULATOR_HOST is set)."""
    return storage.Client(project=project)


def _publish_time(value: Any, source: str) -> datetime:
    # fastavro turns the documented timestamp-micros into an aware datetime; accept the raw
    # microseconds too, in case a reader is ever given a schema without the logical type.
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)
    raise ArchiveFormatError(source, f"publish_time is {type(value).__name__}")


def archived_message(row: Mapping[str, Any], source: str) -> ArchivedMessage:
    """One Avro record as a message; a record without the metadata fields is refused."""
    missing = [name for name in _METADATA_FIELDS if name not in row]
    if missing:
        raise ArchiveFormatError(source, f"missing {', '.join(missing)}")
    data = row["data"]
    attributes = row["attributes"] or {}
    if not isinstance(data, bytes) or not isinstance(attributes, Mapping):
        raise ArchiveFormatError(source, "data is not bytes or attributes is not a map")
    return ArchivedMessage(
        message_id=str(row["message_id"]),
        publish_time=_publish_time(row["publish_time"], source),
        attributes={str(key): str(value) for key, value in attributes.items()},
        data=data,
        source=source,
    )


def read_messages(stream: IO[bytes], source: str) -> Iterator[ArchivedMessage]:
    """Every message of one Avro object, block by block."""
    try:
        rows = fastavro.reader(stream)
        for row in rows:
            if not isinstance(row, Mapping):
                raise ArchiveFormatError(source, "a record is not an Avro record")
            yield archived_message(row, source)
    except (ValueError, EOFError) as exc:
        raise ArchiveFormatError(source, f"{type(exc).__name__}: {exc}") from exc


class CloudStorageArchive:
    """Lists the archive's objects under a prefix and streams each through fastavro."""

    def __init__(self, client: storage.Client, *, chunk_bytes: int = READ_CHUNK_BYTES) -> None:
        self._client = client
        self._chunk_bytes = chunk_bytes

    def messages(
        self, location: ArchiveLocation, *, since: datetime | None, until: datetime
    ) -> Iterator[ArchivedMessage]:
        with translated("Cloud Storage", "archive_unavailable"):
            for blob in self._client.list_blobs(location.bucket, prefix=location.prefix or None):
                # An object is created after every message in it was published: one created
                # before the window holds nothing of it.
                created = blob.time_created
                if since is not None and isinstance(created, datetime) and created < since:
                    continue
                source = f"gs://{location.bucket}/{blob.name}"
                with blob.open("rb", chunk_size=self._chunk_bytes) as stream:
                    for message in read_messages(stream, source):
                        if (since is None or message.publish_time >= since) and (
                            message.publish_time < until
                        ):
                            yield message
