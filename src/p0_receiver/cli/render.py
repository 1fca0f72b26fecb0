"""Audit records as display values: JSON-safe structures, and text safe for a terminal.

Everything a record holds is data, much of it typed by a P0 requester: it is never read as
Rich markup, and code points that would steer a terminal or hide text are shown as escapes.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.highlighter import JSONHighlighter
from rich.text import Text

from p0_receiver.record import RecordField, rfc3339

# Controls (C0, DEL, C1: ESC starts the sequences that recolour, move the cursor, retitle
# the window or make hyperlinks), format characters (bidi overrides and isolates reorder
# what is shown, zero-width ones hide text), line and paragraph separators, and lone
# surrogates (cannot be encoded at all).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _HIDDEN_CATEGORIES


def for_people(text: str) -> str:
    """``text`` with every hidden code point as a Python escape: ESC reads ``\\x1b``."""
    if text.isprintable():  # the common case: nothing to escape
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii") if _hidden(char) else char for char in text
    )


def for_machines(text: str, *, keep: str = "") -> str:
    """``text`` with hidden code points (but those in ``keep``) as JSON escapes (``\\u001b``).

    In JSON text those escapes decode back to the very same string.
    """
    if text.isprintable():
        return text
    return "".join(
        json.dumps(char)[1:-1] if _hidden(char) and char not in keep else char for char in text
    )


def plain(text: str) -> Text:
    """Record text for a Rich renderable: never parsed as markup, hidden code points escaped."""
    return Text(for_people(text))


def json_text(document: Any, *, indent: int | None = None) -> str:
    """JSON of ``document`` (non-ASCII kept readable), with nothing raw a terminal would obey."""
    # The encoder already escapes C0 inside strings; newlines outside strings are its own.
    return for_machines(json.dumps(document, ensure_ascii=False, indent=indent), keep="\n")


def json_panel_text(document: Any) -> Text:
    """Indented, highlighted JSON for a panel.

    Not ``rich.json.JSON``: it re-encodes the data itself, writing C1 and bidi controls raw.
    """
    return JSONHighlighter()(Text(json_text(document, indent=2)))


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
