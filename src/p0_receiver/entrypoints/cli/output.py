"""Everything the CLI prints: consoles, progress, record writers, and record text made safe.

Record values are data, much of it typed by a P0 requester: never read as Rich markup, and
code points that would steer a terminal or hide text are shown as escapes. CSV cells are never
formulas. Writers take one record at a time, so an export of any size holds one page in memory.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import json
import os
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

import click
from rich import box
from rich.console import Console
from rich.highlighter import JSONHighlighter
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from p0_receiver.core.record import RecordField, rfc3339

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


# --- consoles and progress --------------------------------------------------------------------


def stdout() -> TextIO:
    """This moment's stdout (a test runner swaps it per invocation)."""
    return sys.stdout


def stderr_console() -> Console:
    # Messages quote filter values, event ids and Google's error text: plain text, never markup.
    return Console(stderr=True, soft_wrap=True, markup=False, emoji=False)


def tell(message: str) -> None:
    """One message line on stderr, shown exactly as written (escapes for hidden code points)."""
    stderr_console().print(plain(message))


def counting_progress(unit: str = "records") -> Progress:
    """An open-ended progress display on stderr (the total is not known while streaming)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn(f"{{task.completed}} {unit}"),
        TimeElapsedColumn(),
        console=stderr_console(),
        transient=False,
    )


# --- record writers ---------------------------------------------------------------------------

FORMATS = ("table", "json", "jsonl", "csv")
# Table rows are rendered in chunks: a table per chunk, the header on the first only.
_TABLE_CHUNK = 50
# Width of tables written to a pipe or file (a terminal uses its own width).
_PIPED_WIDTH = 240
_WRAPPED_COLUMNS = frozenset(
    # "detail" and "object": audit verify's findings (an explanation, a gs:// object name);
    # "detail" and "fix": doctor's checklist.
    {
        RecordField.REASON,
        RecordField.PERMISSION_NAME,
        RecordField.APPROVER,
        "detail",
        "object",
        "fix",
    }
)
# A spreadsheet evaluates a cell starting with one of these as a formula (OWASP, "CSV
# Injection"): such cells get a leading apostrophe, which makes them text.
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# What a listing shows: when, what, about what, who, who approved, why, delivery state.
LIST_COLUMNS = (
    RecordField.RECEIVED_AT,
    RecordField.EVENT_TYPE,
    RecordField.OBJECT_ID,
    RecordField.PRINCIPAL,
    RecordField.APPROVER,
    RecordField.PERMISSION_NAME,
    RecordField.REASON,
    RecordField.PUBLISH_STATUS,
    RecordField.EVENT_ID,
)
TIMELINE_COLUMNS = (
    RecordField.OCCURRED_AT,
    RecordField.EVENT_TYPE,
    RecordField.REQUEST_STATUS,
    RecordField.PRINCIPAL,
    RecordField.APPROVER,
    RecordField.PERMISSION_NAME,
    RecordField.REASON,
    RecordField.EVENT_ID,
)
# CSV exports: every lifted field, delivery state, and the verbatim body as text.
EXPORT_COLUMNS = (
    RecordField.EVENT_ID,
    RecordField.RECEIVED_AT,
    RecordField.OCCURRED_AT,
    RecordField.EVENT_TYPE,
    RecordField.NOTIFIER_ID,
    RecordField.OBJECT_ID,
    RecordField.PRINCIPAL,
    RecordField.REQUESTOR,
    RecordField.APPROVER,
    RecordField.APPROVER_NAME,
    RecordField.APPROVAL_SOURCE,
    RecordField.PERMISSION_NAME,
    RecordField.INTEGRATION,
    RecordField.ACCESS,
    RecordField.REQUEST_STATUS,
    RecordField.REASON,
    RecordField.DELIVERY_COUNT,
    RecordField.PUBLISH_STATUS,
    RecordField.MESSAGE_ID,
    RecordField.PUBLISHED_AT,
    RecordField.PUBLISH_ATTEMPTS,
    RecordField.LAST_PUBLISH_ERROR,
    RecordField.BODY_SHA256,
    RecordField.BODY,
)


F = TypeVar("F", bound=Callable[..., Any])


def format_option(default: str = "table", choices: Sequence[str] = FORMATS) -> Callable[[F], F]:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(choices),
        default=default,
        show_default=True,
        help="Output format (json, jsonl and csv are for machines; table for people).",
    )


def cell(value: Any) -> str:
    """One value as flat text: times in RFC 3339, structures as compact JSON, None as ''."""
    shown = json_safe(value)
    if shown is None:
        return ""
    if isinstance(shown, dict | list):
        return json.dumps(shown, sort_keys=True, separators=(",", ":"))
    return str(shown)


def spreadsheet_cell(value: Any) -> str:
    """A CSV cell: never a formula; hidden code points as JSON escapes but tabs and newlines.

    JSON escapes keep a body cell parseable JSON. A carriage return is escaped too: printed to
    a terminal it would let the rest of the cell overwrite the line.
    """
    text = cell(value)
    if text.startswith(_FORMULA_TRIGGERS):
        text = "'" + text
    return for_machines(text, keep="\t\n")


def _table_cell(value: Any) -> Text:
    if isinstance(value, datetime):
        return Text(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"))
    return plain(cell(value))


def wide_console(stream: TextIO) -> Console:
    """A terminal's (or $COLUMNS') width; piped to a file or pager, wide enough for event ids.

    Markup and emoji codes are off: what is printed is text, whoever wrote it.
    """
    chosen = stream.isatty() or "COLUMNS" in os.environ
    return Console(file=stream, width=None if chosen else _PIPED_WIDTH, markup=False, emoji=False)


class RecordWriter(Protocol):
    count: int

    def write(self, record: Mapping[str, Any]) -> None: ...


# How a row becomes a JSON document: a record shows its body as text; other rows as they are.
_Document = Callable[[Mapping[str, Any]], Any]


class _JsonLines:
    def __init__(self, stream: TextIO, document: _Document) -> None:
        self._stream = stream
        self._document = document
        self.count = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self._stream.write(json_text(self._document(record)) + "\n")
        self.count += 1


class _JsonArray:
    def __init__(self, stream: TextIO, document: _Document) -> None:
        self._stream = stream
        self._document = document
        self.count = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self._stream.write("[\n  " if self.count == 0 else ",\n  ")
        self._stream.write(json_text(self._document(record)))
        self.count += 1

    def close(self) -> None:
        self._stream.write("[]\n" if self.count == 0 else "\n]\n")


class _Csv:
    def __init__(self, stream: TextIO, columns: Sequence[str]) -> None:
        self._writer = csv.writer(stream, lineterminator="\n")
        self._writer.writerow(columns)
        self._columns = columns
        self.count = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self._writer.writerow([spreadsheet_cell(record.get(name)) for name in self._columns])
        self.count += 1


class _Table:
    def __init__(self, stream: TextIO, columns: Sequence[str]) -> None:
        self._console = wide_console(stream)
        self._columns = columns
        self._rows: list[list[Text]] = []
        self.count = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self._rows.append([_table_cell(record.get(name)) for name in self._columns])
        self.count += 1
        if len(self._rows) >= _TABLE_CHUNK:
            self._flush()

    def _flush(self) -> None:
        first = self.count <= _TABLE_CHUNK
        table = Table(box=box.SIMPLE_HEAD if first else None, show_header=first, pad_edge=False)
        for name in self._columns:
            # Free text wraps; identifiers, times and types stay whole (copy-pasteable).
            wrapped = name in _WRAPPED_COLUMNS
            table.add_column(
                name, overflow="fold", no_wrap=not wrapped, min_width=14 if wrapped else None
            )
        for row in self._rows:
            table.add_row(*row)
        self._console.print(table)
        self._rows.clear()

    def close(self) -> None:
        if self._rows:
            self._flush()


@contextmanager
def _writer(
    output_format: str, stream: TextIO, columns: Sequence[str], document: _Document
) -> Iterator[RecordWriter]:
    if output_format == "jsonl":
        yield _JsonLines(stream, document)
    elif output_format == "json":
        array = _JsonArray(stream, document)
        yield array
        array.close()
    elif output_format == "csv":
        yield _Csv(stream, columns)
    else:
        table = _Table(stream, columns)
        yield table
        table.close()
    stream.flush()


def record_writer(
    output_format: str, stream: TextIO, columns: Sequence[str] = LIST_COLUMNS
) -> contextlib.AbstractContextManager[RecordWriter]:
    """A writer for ``output_format``; json and jsonl carry whole records, csv/table columns."""
    return _writer(output_format, stream, columns, record_for_display)


def row_writer(
    output_format: str, stream: TextIO, columns: Sequence[str]
) -> contextlib.AbstractContextManager[RecordWriter]:
    """The same writers for rows that are not records (e.g. counts): no body, keys as given."""
    return _writer(output_format, stream, columns, json_safe)


@contextmanager
def output_stream(path: Path | None, *, replace: bool) -> Iterator[TextIO]:
    """stdout, or a new file only its owner can read: exports hold personal data.

    Never opens an existing file: without ``replace`` the name must be free; with it, a new
    file is written beside it and renamed over it, so neither a symlink nor a hard link at
    ``path`` is written through. A failed export leaves nothing behind.
    """
    if path is None:
        yield stdout()
        return
    if path.is_symlink():
        raise click.UsageError(f"{path} is a symbolic link; refusing to write through it")
    try:
        if replace:
            descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        else:
            # O_EXCL also refuses a symlink created since the check above.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            partial = str(path)
    except FileExistsError:
        raise click.UsageError(f"{path} already exists; pass --force to replace it") from None
    except OSError as problem:
        raise click.ClickException(f"cannot create {path}: {problem.strerror}") from problem
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as stream:
            yield stream
        if replace:
            os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
