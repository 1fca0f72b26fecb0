"""Turning audit records (Firestore values) into JSON-safe structures for display."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from p0_receiver.record import RecordField, rfc3339


def json_safe(value: Any) -> Any:
    """Datetimes as RFC 3339, bytes as UTF-8 text (or base64), recursively."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def record_for_display(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with its verbatim body shown as text, keys in a stable order."""
    shown: dict[str, Any] = json_safe(dict(sorted(record.items())))
    return shown | {RecordField.BODY: json_safe(record.get(RecordField.BODY))}
