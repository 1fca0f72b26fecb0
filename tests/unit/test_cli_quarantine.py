"""``p0-receiver quarantine`` over the in-memory ports: formats, exit codes, hostile text."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result

from p0_receiver.core.errors import SchemaViolationError
from p0_receiver.entrypoints.cli import main
from p0_receiver.entrypoints.cli.operator import OperatorContext
from p0_receiver.settings import OperatorSettings
from tests.fakes import InMemoryAuditReader
from tests.unit.test_quarantine import DRIFTED, NOW
from tests.unit.test_release import World

ENV = {"GOOGLE_CLOUD_PROJECT": "acme-audit", "PUBSUB_TOPIC": "events"}
# A requester-typed value that would recolour a terminal, a markup tag and a formula.
HOSTILE = "=HYPERLINK(1)[bold red]x\x1b[2J\u202e"


def hostile_body() -> bytes:
    document = json.loads(DRIFTED)
    document["data"]["reason"] = HOSTILE
    return json.dumps(document).encode()


class Cli:
    def __init__(self) -> None:
        self.world = World()
        self.context = OperatorContext(
            environ=dict(ENV),
            clock=lambda: NOW + timedelta(hours=1),
            connect=self._backends,
            connect_publisher=lambda _: self.world.publisher,
            connect_quarantine=lambda _: self.world.quarantine,
            connect_ledger=lambda _: self.world.ledger,
        )

    def _backends(self, _: OperatorSettings, __: int | None) -> Any:
        from p0_receiver.adapters.clients import AuditBackends

        return AuditBackends(InMemoryAuditReader(self.world.audit), self.world.audit)

    def refuse(self, payload: bytes = DRIFTED) -> str:
        with pytest.raises(SchemaViolationError) as caught:
            self.world.deliver(payload)
        assert caught.value.quarantine is not None
        return caught.value.quarantine.quarantine_id

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(main, ["quarantine", *args], obj=self.context)


def test_list_in_every_format() -> None:
    cli = Cli()
    held = cli.refuse()
    table = cli.run("list")
    assert table.exit_code == 0
    assert held in table.stdout
    assert "schema_violation" in table.stdout
    assert "held" in table.stdout
    (row,) = json.loads(cli.run("list", "--format", "json").stdout)
    assert (row["quarantineId"], row["status"], row["count"]) == (held, "held", 1)
    assert "body" not in row
    (line,) = cli.run("list", "--format", "jsonl").stdout.splitlines()
    assert json.loads(line)["quarantineId"] == held
    rows = list(csv.DictReader(io.StringIO(cli.run("list", "--format", "csv").stdout)))
    assert [r["quarantineId"] for r in rows] == [held]


def test_an_empty_quarantine_says_so() -> None:
    result = Cli().run("list")
    assert (result.exit_code, result.stderr.strip()) == (0, "the quarantine is empty")


def test_show_prints_the_body_as_data_and_raw_prints_the_exact_bytes() -> None:
    cli = Cli()
    payload = hostile_body()
    held = cli.refuse(payload)
    shown = cli.run("show", held)
    assert shown.exit_code == 0
    assert "\x1b" not in shown.stdout
    assert "\u202e" not in shown.stdout
    assert "[bold red]" in shown.stdout  # shown as typed, never read as markup
    assert "integrity: ok" in shown.stdout
    document = json.loads(cli.run("show", held, "--format", "json").stdout)
    assert document["body"]["data"]["reason"] == HOSTILE  # JSON escapes decode back exactly
    assert document["token"]["claims"]["iss"]
    raw = CliRunner().invoke(main, ["quarantine", "show", held, "--raw"], obj=cli.context)
    assert raw.stdout_bytes == payload


def test_show_of_an_edited_body_exits_1() -> None:
    cli = Cli()
    held = cli.refuse()
    cli.world.quarantine.entries[held]["body"] = b"{}"
    result = cli.run("show", held)
    assert result.exit_code == 1
    assert "integrity: WARNING" in result.stdout


def test_a_malformed_id_is_a_usage_error_and_a_missing_one_a_failure() -> None:
    cli = Cli()
    assert cli.run("show", "../p0_notifications/x").exit_code == 2
    missing = cli.run("show", "0" * 64)
    assert (missing.exit_code, "no quarantine entry" in missing.stderr) == (1, True)


def test_release_needs_as_unrecognised_for_a_body_that_still_does_not_parse() -> None:
    cli = Cli()
    held = cli.refuse()
    refused = cli.run("release", held)
    assert refused.exit_code == 2
    assert "--as-unrecognised" in refused.stderr
    assert cli.world.audit.records == {}
    released = cli.run("release", held, "--as-unrecognised")
    assert released.exit_code == 0, released.stderr
    assert "recorded and published" in released.stderr
    assert "shapeCheck unrecognised" in released.stderr
    (record,) = cli.world.audit.records.values()
    assert record["releasedFrom"]["quarantineId"] == held
    listed = json.loads(cli.run("list", "--format", "json").stdout)
    assert (listed[0]["status"], listed[0]["releasedEventId"]) == ("released", record["eventId"])
    again = cli.run("release", held, "--as-unrecognised")
    assert (again.exit_code, "already recorded" in again.stderr) == (0, True)
    assert len(cli.world.publisher.messages) == 1


def test_release_with_pubsub_down_exits_1_and_leaves_the_record_received() -> None:
    cli = Cli()
    held = cli.refuse()
    cli.world.publisher.unavailable = True
    result = cli.run("release", held, "--as-unrecognised")
    assert result.exit_code == 1
    assert "stays 'received'" in result.stderr
    (record,) = cli.world.audit.records.values()
    assert record["publishStatus"] == "received"


def test_release_of_a_missing_entry_exits_1() -> None:
    result = Cli().run("release", "0" * 64)
    assert (result.exit_code, "no quarantine entry" in result.stderr) == (1, True)


def test_discard_needs_yes_then_deletes() -> None:
    cli = Cli()
    held = cli.refuse()
    refused = cli.run("discard", held)
    assert (refused.exit_code, "--yes" in refused.stderr) == (2, True)
    assert held in cli.world.quarantine.entries
    done = cli.run("discard", held, "--yes")
    assert done.exit_code == 0
    assert held not in cli.world.quarantine.entries
    assert cli.run("discard", held, "--yes").exit_code == 1


def test_a_quarantine_outage_exits_1_with_one_line() -> None:
    cli = Cli()
    cli.world.quarantine.unavailable = True
    result = cli.run("list")
    assert result.exit_code == 1
    assert "quarantine_unavailable" in result.stderr
    assert "Traceback" not in result.stderr


def test_list_filters_by_reason_and_says_when_none_is_kept_for_it() -> None:
    cli = Cli()
    held = cli.refuse()
    listed = cli.run("list", "--reason", "schema_violation", "--format", "json")
    assert listed.exit_code == 0
    assert [row["quarantineId"] for row in json.loads(listed.stdout)] == [held]
    none = cli.run("list", "--reason", "token_reused")
    assert (none.exit_code, none.stderr.strip()) == (0, "no entry is kept for that reason")
    unknown = cli.run("list", "--reason", "<script>")
    assert unknown.exit_code == 2
    assert "<script>" not in unknown.stderr.split("Invalid value")[0]


def test_a_second_release_says_it_published_nothing_and_who_will() -> None:
    cli = Cli()
    held = cli.refuse()
    cli.world.publisher.unavailable = True
    first = cli.run("release", held, "--as-unrecognised")
    assert first.exit_code == 1
    cli.world.publisher.unavailable = False
    second = cli.run("release", held, "--as-unrecognised")
    assert second.exit_code == 0
    assert "already recorded (no second record, nothing published)" in second.stderr
    assert "publishStatus received" in second.stderr
    assert "`p0-receiver redrive --min-age 0s` does it now" in second.stderr
    assert cli.world.publisher.messages == []
