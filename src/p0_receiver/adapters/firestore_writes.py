"""The accepted path's Firestore writes, encoded straight to protobuf and committed in one RPC.

The client library turns every value into a proto-plus wrapper before it reaches protobuf; for
a ~40-field audit record that marshalling was half the CPU of the commit (measured: 3.5 ms of
client CPU per ledger-and-record commit through ``WriteBatch``, 1.7 ms with this module). Here
the plain types a record holds (None, bool, int, float, str, bytes, datetime, dict, list) are
encoded directly into the same ``Value`` messages, and any other type is handed to the
library's own encoder; the result is byte-identical to the library's writes
(``tests/unit/test_firestore_writes.py`` proves it for any record). The commit is the call
``WriteBatch.commit`` itself makes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from google.api_core.retry import Retry
from google.cloud import firestore
from google.cloud._helpers import _datetime_to_pb_timestamp
from google.cloud.firestore_v1 import _helpers as library_helpers
from google.cloud.firestore_v1.types import common, document, write
from google.cloud.firestore_v1.types import firestore as firestore_types
from google.protobuf import struct_pb2

# The protobuf classes behind the proto-plus types (``.pb()`` is proto-plus's public accessor).
_Value = document.Value.pb()
_MapValue = document.MapValue.pb()
_ArrayValue = document.ArrayValue.pb()
_Document = document.Document.pb()
_DocumentMask = common.DocumentMask.pb()
_Precondition = common.Precondition.pb()
_Write = write.Write.pb()
_FieldTransform = write.DocumentTransform.FieldTransform.pb()
_CommitRequest = firestore_types.CommitRequest.pb()
# A field path that needs no quoting in an update mask (the library backquotes any other name).
_SIMPLE_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _timestamp(moment: datetime) -> Any:
    # The library encoder's own conversion (naive = UTC; protobuf's FromDatetime differs for
    # offsets with a fraction of a second).
    return _Value(timestamp_value=_datetime_to_pb_timestamp(moment))  # type: ignore[no-untyped-call]


# Exact types only: subclasses (bool of int, the library's nanosecond datetime, BSON bytes)
# carry meaning of their own and go to the library's encoder.
_SCALARS: dict[type, Callable[[Any], Any]] = {
    type(None): lambda _: _Value(null_value=struct_pb2.NULL_VALUE),
    bool: lambda value: _Value(boolean_value=value),
    int: lambda value: _Value(integer_value=value),
    float: lambda value: _Value(double_value=value),
    str: lambda value: _Value(string_value=value),
    bytes: lambda value: _Value(bytes_value=value),
    datetime: _timestamp,
}


def _encode(value: Any, *, field_path: bool) -> Any:
    kind = type(value)
    if kind is dict:
        return _Value(map_value=_MapValue(fields=_fields(value, field_paths=field_path)))
    if kind is list or kind is tuple:
        items = [_encode(item, field_path=False) for item in value]
        return _Value(array_value=_ArrayValue(values=items))
    encoder = _SCALARS.get(kind)
    if encoder is None:
        return library_helpers.encode_value(value)._pb
    return encoder(value)


def _fields(data: Mapping[str, Any], *, field_paths: bool) -> dict[str, Any]:
    # The library reads every map key outside an array as a field path and refuses an empty
    # one (keys of maps inside arrays are not paths, and any string passes).
    if field_paths and "" in data:
        raise ValueError("One or more components is not a string or is empty.")
    return {name: _encode(value, field_path=field_paths) for name, value in data.items()}


def encode_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """A document's fields as protobuf ``Value`` messages, exactly as the library encodes them."""
    return _fields(data, field_paths=True)


def create_write(client: firestore.Client, path: str, data: Mapping[str, Any]) -> Any:
    """``create()``: the document must not exist yet."""
    return _Write(
        update=_Document(name=_document_name(client, path), fields=encode_fields(data)),
        current_document=_Precondition(exists=False),
    )


def update_write(
    client: firestore.Client,
    path: str,
    fields: Mapping[str, Any],
    *,
    increments: Mapping[str, int],
) -> Any:
    """``update()`` of top-level fields plus integer increments; the document must exist."""
    for name in (*fields, *increments):
        if not _SIMPLE_FIELD.fullmatch(name):
            raise ValueError("update_write takes plain top-level field names only")
    return _Write(
        update=_Document(name=_document_name(client, path), fields=encode_fields(fields)),
        update_mask=_DocumentMask(field_paths=sorted(fields)),  # the library sorts the mask
        current_document=_Precondition(exists=True),
        update_transforms=[
            _FieldTransform(field_path=name, increment=_Value(integer_value=by))
            for name, by in sorted(increments.items())
        ],
    )


def commit(
    client: firestore.Client, writes: Iterable[Any], *, retry: Retry, timeout: float
) -> None:
    """Apply the writes atomically in one ``Commit`` RPC (what ``WriteBatch.commit`` sends)."""
    request = _CommitRequest(database=client._database_string, writes=list(writes))
    client._firestore_api.commit(
        request=firestore_types.CommitRequest.wrap(request),
        metadata=client._rpc_metadata,
        retry=retry,
        timeout=timeout,
    )


def _document_name(client: firestore.Client, path: str) -> str:
    return f"{client._database_string}/documents/{path}"
