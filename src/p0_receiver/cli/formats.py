"""Streaming output of records: a rich table, a JSON array, JSON lines or CSV.

Writers take one record at a time, so an export of any size holds one page in memory. Record
values are text, never markup or terminal controls (``render``); CSV cells are never formulas.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO, TypeVar

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from p0_receiver.cli.render import for_machines, json_safe, json_text, plain, record_for_display
from p0_receiver.record import RecordField

FORMATS = ("table", "json", "jsonl", "csv")
# Table rows are rendered in chunks: a table per chunk, the header on the first only.
_TABLE_CHUNK = 50
# Width of tables written to a pipe or file (a terminal uses its own width).
_PIPED_WIDTH = 240
_WRAPPED_COLUMNS = frozenset({"reason", RecordField.PERMISSION_NAME, RecordField.APPROVER})
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
    "reason",
    RecordField.PUBLISH_STATUS,
    RecordField.EVENT_ID,
)
TIMELINE_COLUMNS = (
    RecordField.OCCURRED_AT,
    RecordField.EVENT_TYPE,
    "requestStatus",
    RecordField.PRINCIPAL,
    RecordField.APPROVER,
    RecordField.PERMISSION_NAME,
    "reason",
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
    "approverName",
    "approvalSource",
    RecordField.PERMISSION_NAME,
    "integration",
    "access",
    "requestStatus",
    "reason",
    RecordField.DELIVERY_COUNT,
    RecordField.PUBLISH_STATUS,
    RecordField.MESSAGE_ID,
    RecordField.PUBLISHED_AT,
    RecordField.PUBLISH_ATTEMPTS,
    RecordField.LAST_PUBLISH_ERROR,
    "bodySha256",
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


class _JsonLines:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.count = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self._stream.write(json_text(record_for_display(record)) + "\n")
        self.count += 1


class _JsonArray:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.count = 0

    def write(self, record: Mapping[str, Any]) -> None:
        self._stream.write("[\n  " if self.count == 0 else ",\n  ")
        self._stream.write(json_text(record_for_display(record)))
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
def record_writer(
    output_format: str, stream: TextIO, columns: Sequence[str] = LIST_COLUMNS
) -> Iterator[RecordWriter]:
    """A writer for ``output_format``; json and jsonl carry whole records, csv/table columns."""
    if output_format == "jsonl":
        yield _JsonLines(stream)
    elif output_format == "json":
        array = _JsonArray(stream)
        yield array
        array.close()
    elif output_format == "csv":
        yield _Csv(stream, columns)
    else:
        table = _Table(stream, columns)
        yield table
        table.close()
    stream.flush()
