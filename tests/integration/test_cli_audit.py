"""The operator CLI's read path (audit query/show/timeline/stats/export) on the emulators."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import Stack
from tests.integration.cli_world import (
    NOW,
    Receiver,
    cli,
    jsonl,
    preapproval_body,
    request_body,
    tamper,
)

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)
PROD = "roles/cloudsql.client on prod-db"
STAGING = "roles/cloudsql.client on staging-db"


class World:
    """Seven deliveries by the receiver's code; ``ids`` maps a label to its event id."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.ids: dict[str, str] = {}
        receiver = Receiver(stack)
        outage = Receiver(stack, topic="deleted-topic")  # publish fails: stays "received"
        t = NOW - 6 * DAY
        # R1's approval arrives before its creation: the timeline must follow P0's times.
        deliveries = [
            (
                "r1-approved",
                receiver,
                t,
                request_body(
                    "request-approved",
                    object_id="R1",
                    principal="alice@corp.example",
                    permission=PROD,
                    reason="INC-4711: prod-db latency",
                    updated=t - timedelta(minutes=2),
                    approver="bob@corp.example",
                ),
            ),
            (
                "r1-created",
                receiver,
                t + timedelta(minutes=1),
                request_body(
                    "request-created",
                    object_id="R1",
                    principal="alice@corp.example",
                    permission=PROD,
                    reason="INC-4711: prod-db latency",
                    updated=t - timedelta(minutes=9),
                ),
            ),
            (
                "r1-expired",
                receiver,
                t + DAY,
                request_body(
                    "request-expired",
                    object_id="R1",
                    principal="alice@corp.example",
                    permission=PROD,
                    reason="INC-4711: prod-db latency",
                    updated=t + DAY,
                ),
            ),
            (
                "r2-approved",
                receiver,
                NOW - 3 * DAY,
                request_body(
                    "request-approved",
                    object_id="R2",
                    principal="carol@corp.example",
                    permission=STAGING,
                    reason="migration dry run",
                    updated=NOW - 3 * DAY,
                    approver="bob@corp.example",
                ),
            ),
            (
                "p1-created",
                receiver,
                NOW - 2 * DAY,
                preapproval_body(
                    object_id="P1",
                    principal="dave@corp.example",
                    approver="erin@corp.example",
                    created=NOW - 2 * DAY,
                    notifier="p0-other",
                ),
            ),
            (
                "r3-approved",
                receiver,
                NOW - 10 * DAY,
                request_body(
                    "request-approved",
                    object_id="R3",
                    principal="alice@corp.example",
                    permission=PROD,
                    reason="quarterly restore test",
                    updated=NOW - 10 * DAY,
                    approver="erin@corp.example",
                ),
            ),
            (
                "r4-created",
                outage,
                NOW - timedelta(hours=1),
                request_body(
                    "request-created",
                    object_id="R4",
                    principal="carol@corp.example",
                    permission=PROD,
                    reason="backfill",
                    updated=NOW - timedelta(hours=1),
                ),
            ),
        ]
        for label, via, at, body in deliveries:
            self.ids[label] = via.deliver(body, at=at)
        self.labels = {event_id: label for label, event_id in self.ids.items()}
        self.bodies = {label: body for label, _, _, body in deliveries}

    def labelled(self, records: list[dict[str, object]]) -> list[str]:
        return [self.labels[str(record["eventId"])] for record in records]


@pytest.fixture(scope="module")
def world(emulators: dict[str, str]) -> World:
    stack = Stack(project=f"cli-audit-{uuid.uuid4().hex[:8]}", emulator_env=emulators)
    stack.create_topic()
    return World(stack)


NEWEST_FIRST = [
    "r4-created",
    "p1-created",
    "r2-approved",
    "r1-expired",
    "r1-created",
    "r1-approved",
    "r3-approved",
]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), NEWEST_FIRST),
        (("--type", "request-approved"), ["r2-approved", "r1-approved", "r3-approved"]),
        (
            ("--principal", "alice@corp.example"),
            ["r1-expired", "r1-created", "r1-approved", "r3-approved"],
        ),
        (("--approver", "bob@corp.example"), ["r2-approved", "r1-approved"]),
        (("--notifier", "p0-other"), ["p1-created"]),
        (("--object-id", "R1"), ["r1-expired", "r1-created", "r1-approved"]),
        (("--status", "received"), ["r4-created"]),
        (("--status", "published", "--limit", "3"), ["p1-created", "r2-approved", "r1-expired"]),
        (("--since", "7d"), NEWEST_FIRST[:-1]),
        (
            ("--since", "2024-05-04", "--until", "2024-05-07"),
            ["r1-expired", "r1-created", "r1-approved"],
        ),
        (
            ("--until", "2d"),
            ["r2-approved", "r1-expired", "r1-created", "r1-approved", "r3-approved"],
        ),
        # The auditor's question: who had access to prod-db last week, approved by whom?
        (
            ("--type", "request-approved", "--principal", "alice@corp.example", "--since", "7d"),
            ["r1-approved"],
        ),
        (
            (
                "--approver",
                "erin@corp.example",
                "--type",
                "request-approved",
                "--status",
                "published",
            ),
            ["r3-approved"],
        ),
        (
            ("--principal", "carol@corp.example", "--object-id", "R2", "--notifier", "p0-notifier"),
            ["r2-approved"],
        ),
        (("--principal", "nobody@corp.example"), []),
    ],
)
def test_query_filters_newest_first_across_pages(
    world: World, args: tuple[str, ...], expected: list[str]
) -> None:
    # page size 2: every listing longer than two crosses at least one page boundary
    records = jsonl(cli(world.stack, "audit", "query", *args, "--format", "jsonl"))
    assert world.labelled(records) == expected


def test_limit_stops_mid_page_and_list_is_an_alias(world: World) -> None:
    for page_size in (1, 2, 3, 50):
        result = cli(
            world.stack, "audit", "list", "--limit", "5", "--format", "jsonl", page_size=page_size
        )
        assert world.labelled(jsonl(result)) == NEWEST_FIRST[:5]


def test_every_format_parses_to_the_same_records(world: World) -> None:
    as_jsonl = jsonl(cli(world.stack, "audit", "query", "--format", "jsonl"))
    as_json = cli(world.stack, "audit", "query", "--format", "json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == as_jsonl
    assert as_jsonl[0]["receivedAt"] == "2024-05-10T11:00:00.000Z"
    assert as_jsonl[0]["body"] == world.bodies["r4-created"].decode()
    assert "header" in as_jsonl[0]["token"]

    as_csv = cli(world.stack, "audit", "query", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["eventId"] for row in rows] == [record["eventId"] for record in as_jsonl]
    assert rows[0]["reason"] == "backfill"
    assert rows[0]["publishStatus"] == "received"

    table = cli(world.stack, "audit", "query", "--principal", "alice@corp.example")
    assert table.exit_code == 0
    assert "principal" in table.stdout
    assert "INC-4711" in table.stdout

    empty = cli(world.stack, "audit", "query", "--principal", "nobody@corp.example")
    assert (empty.exit_code, empty.stdout.strip()) == (0, "")
    assert "no records match (principal=nobody@corp.example)" in empty.stderr
    assert (
        cli(world.stack, "audit", "query", "--principal", "x", "--format", "json").stdout == "[]\n"
    )


def test_show_explains_a_record_and_checks_its_integrity(world: World) -> None:
    event_id = world.ids["p1-created"]
    table = cli(world.stack, "audit", "show", event_id)
    assert table.exit_code == 0, table.output
    assert "integrity: ok" in table.stdout
    assert "erin@corp.example" in table.stdout
    assert "my-notifier-service" in table.stdout  # the token's sub claim

    document = json.loads(cli(world.stack, "audit", "show", event_id, "--format", "json").stdout)
    assert document["record"]["eventId"] == event_id
    assert document["record"]["approver"] == "erin@corp.example"
    assert "body" not in document["record"]
    assert document["token"]["claims"]["sub"] == "my-notifier-service"
    assert document["body"] == json.loads(world.bodies["p1-created"])
    assert document["integrity"] == {
        "ok": True,
        "bodyMatchesSha256": True,
        "bodyMatchesEventId": True,
        "fieldsMatchBody": True,
        "mismatchedFields": [],
        "problems": [],
    }


def test_show_raw_prints_exactly_the_bytes_p0_sent(world: World) -> None:
    result = cli(world.stack, "audit", "show", world.ids["p1-created"], "--raw")
    assert result.exit_code == 0
    assert result.stdout_bytes == world.bodies["p1-created"]  # indented: spacing kept


def test_show_unknown_event_id_fails(world: World) -> None:
    result = cli(world.stack, "audit", "show", "0" * 64)
    assert result.exit_code == 1
    assert f"no audit record with event id {'0' * 64}" in result.stderr


def test_show_finds_a_record_by_a_unique_event_id_prefix(world: World) -> None:
    event_id = world.ids["r1-approved"]
    document = json.loads(
        cli(world.stack, "audit", "show", event_id[:8], "--format", "json").stdout
    )
    assert document["record"]["eventId"] == event_id
    assert document["integrity"]["ok"] is True
    raw = cli(world.stack, "audit", "show", event_id[:10], "--raw")
    assert raw.stdout_bytes == world.bodies["r1-approved"]

    unused = next(
        prefix
        for prefix in ("00000000", "ffffffff")
        if not any(event_id.startswith(prefix) for event_id in world.labels)
    )
    missing = cli(world.stack, "audit", "show", unused)
    assert (missing.exit_code, missing.stderr) == (
        1,
        "Error: no audit record has an event id starting with those characters\n",
    )


# Two bodies whose event ids share their first 8 hex characters: found once by a birthday
# search over the reason's counter (about 77,000 hashes, too slow to repeat in every run).
SHARED_PREFIX_COUNTERS = (6056, 77246)


def prefix_probe(counter: int) -> bytes:
    return request_body(
        "request-created",
        object_id="PREFIX",
        principal="alice@corp.example",
        permission=PROD,
        reason=f"prefix probe {counter}",
        updated=NOW,
    )


def test_show_refuses_an_ambiguous_event_id_prefix(stack: Stack) -> None:
    receiver = Receiver(stack)
    first, second = sorted(
        receiver.deliver(prefix_probe(counter), at=NOW) for counter in SHARED_PREFIX_COUNTERS
    )
    assert first[:8] == second[:8], "request_body changed: search the counters again"
    ambiguous = cli(stack, "audit", "show", first[:8])
    assert (ambiguous.exit_code, ambiguous.stdout) == (1, "")
    assert ambiguous.stderr == (
        "Error: 2 or more audit records have an event id starting with those characters "
        f"({first}, {second}); give more of the event id\n"
    )
    # One more character than they share tells them apart.
    shared = next(n for n in range(8, 64) if first[n] != second[n])
    for event_id in (first, second):
        shown = cli(stack, "audit", "show", event_id[: shared + 1], "--format", "json")
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["record"]["eventId"] == event_id


def test_show_warns_when_a_stored_body_was_altered(stack: Stack) -> None:
    body = request_body(
        "request-approved",
        object_id="T1",
        principal="mallory@corp.example",
        permission=PROD,
        reason="r",
        updated=NOW,
        approver="bob@corp.example",
    )
    event_id = Receiver(stack).deliver(body, at=NOW)
    tamper(stack, event_id, body=body.replace(b"mallory", b"someone"))
    result = cli(stack, "audit", "show", event_id)
    assert result.exit_code == 1
    assert "integrity: WARNING the body no longer hashes to bodySha256" in result.stdout
    assert "not the record's eventId" in result.stdout


def test_show_warns_when_a_searchable_field_was_edited(stack: Stack) -> None:
    body = request_body(
        "request-approved",
        object_id="T2",
        principal="mallory@corp.example",
        permission=PROD,
        reason="INC-9: rotate keys",
        updated=NOW,
        approver="bob@corp.example",
    )
    event_id = Receiver(stack).deliver(body, at=NOW)
    # The body still hashes fine; the fields auditors filter on now lie.
    tamper(stack, event_id, approver="ciso@corp.example", reason="approved by the CISO")
    result = cli(stack, "audit", "show", event_id)
    assert result.exit_code == 1
    assert (
        "integrity: WARNING fields that no longer match the body: approver, reason" in result.stdout
    )
    as_json = cli(stack, "audit", "show", event_id, "--format", "json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["integrity"] == {
        "ok": False,
        "bodyMatchesSha256": True,
        "bodyMatchesEventId": True,
        "fieldsMatchBody": False,
        "mismatchedFields": ["approver", "reason"],
        "problems": ["fields that no longer match the body: approver, reason"],
    }


def test_timeline_follows_p0_time_not_arrival(world: World) -> None:
    records = jsonl(cli(world.stack, "audit", "timeline", "R1", "--format", "jsonl"))
    assert world.labelled(records) == ["r1-created", "r1-approved", "r1-expired"]
    occurred = [record["occurredAt"] for record in records]
    assert occurred == sorted(occurred)

    csv_rows = list(
        csv.DictReader(
            io.StringIO(cli(world.stack, "audit", "timeline", "R1", "--format", "csv").stdout)
        )
    )
    assert [row["requestStatus"] for row in csv_rows] == ["CREATED", "APPROVED", "EXPIRED"]
    missing = cli(world.stack, "audit", "timeline", "NOPE")
    assert (missing.exit_code, missing.stderr.strip()) == (0, "no records about NOPE")


def test_stats_counts_by_type_day_and_status(world: World) -> None:
    result = cli(world.stack, "audit", "stats", "--since", "7d", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "since": "2024-05-03T12:00:00.000Z",
        "until": None,
        "total": 6,
        "eventType": {
            "request-approved": 2,
            "request-created": 2,
            "request-expired": 1,
            "preapproval-created": 1,
        },
        "day": {
            "2024-05-04": 2,
            "2024-05-05": 1,
            "2024-05-07": 1,
            "2024-05-08": 1,
            "2024-05-10": 1,
        },
        "publishStatus": {"published": 5, "received": 1},
    }
    rows = list(
        csv.DictReader(
            io.StringIO(
                cli(world.stack, "audit", "stats", "--since", "30d", "--format", "csv").stdout
            )
        )
    )
    assert {"dimension": "publishStatus", "key": "published", "count": "6"} in rows
    lines = cli(world.stack, "audit", "stats", "--since", "30d", "--format", "jsonl").stdout
    assert {"dimension": "eventType", "key": "request-approved", "count": 3} in [
        json.loads(line) for line in lines.splitlines()
    ]
    table = cli(world.stack, "audit", "stats", "--since", "30d")
    assert "7 records received" in table.stdout


def test_export_streams_jsonl_csv_and_json(world: World, tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    result = cli(world.stack, "audit", "export", "--since", "7d", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"exported 6 records (since=2024-05-03T12:00:00+00:00) to {target}" in result.stderr
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert world.labelled(exported) == NEWEST_FIRST[:-1]
    assert exported[0]["body"] == world.bodies["r4-created"].decode()

    as_csv = cli(world.stack, "audit", "export", "--format", "csv", "--object-id", "R1")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["eventId"] for row in rows] == [world.ids[n] for n in NEWEST_FIRST[3:6]]
    assert json.loads(rows[0]["body"])["data"]["id"] == "R1"
    as_json = cli(world.stack, "audit", "export", "--format", "json")
    assert len(json.loads(as_json.stdout)) == 7


def test_export_file_is_private_and_never_overwritten(world: World, tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    first = cli(world.stack, "audit", "export", "--output", str(target))
    assert first.exit_code == 0, first.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # personal data: the owner's only
    exported = target.read_bytes()
    again = cli(world.stack, "audit", "export", "--format", "csv", "--output", str(target))
    assert again.exit_code == 2
    assert f"{target} already exists; pass --force to replace it" in again.stderr
    assert target.read_bytes() == exported


def test_export_never_writes_through_a_symlink(world: World, tmp_path: Path) -> None:
    victim = tmp_path / "authorized_keys"
    victim.write_text("ssh-ed25519 AAAA admin\n")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(victim)
    for force in ((), ("--force",)):
        result = cli(world.stack, "audit", "export", "--output", str(link), *force)
        assert result.exit_code == 2, result.output
        assert f"{link} is a symbolic link; refusing to write through it" in result.stderr
        assert victim.read_text() == "ssh-ed25519 AAAA admin\n"
        assert link.is_symlink()
    dangling = tmp_path / "new.jsonl"
    dangling.symlink_to(tmp_path / "made-elsewhere")
    result = cli(world.stack, "audit", "export", "--output", str(dangling))
    assert result.exit_code == 2
    assert not (tmp_path / "made-elsewhere").exists()


def test_export_force_replaces_the_file_with_a_new_private_one(
    world: World, tmp_path: Path
) -> None:
    target = tmp_path / "audit.csv"
    target.write_text("old export\n")
    target.chmod(0o644)
    elsewhere = tmp_path / "hard-link"
    os.link(target, elsewhere)
    result = cli(
        world.stack, "audit", "export", "--format", "csv", "--output", str(target), "--force"
    )
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(io.StringIO(target.read_text())))) == 7
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert elsewhere.read_text() == "old export\n"  # a new file, not the old one rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.csv", "hard-link"]


@pytest.mark.parametrize(
    ("args", "flag", "problem"),
    [
        (("audit", "query", "--since", "last tuesday"), "'--since'", "neither ISO-8601"),
        (("audit", "query", "--status", "lost"), "'--status'", "'lost' is not one of"),
        (("audit", "query", "--limit", "-1"), "'--limit'", "x>=0"),
        (("audit", "query", "--since", "1d", "--until", "2d"), "'--until'", "later than --since"),
        (("audit", "query", "--principal", " "), "'--principal'", "must not be empty"),
        (("audit", "export", "--format", "table"), "'--format'", "'table' is not one of"),
        (("audit", "stats", "--since", "7x"), "'--since'", "neither ISO-8601"),
        (("redrive", "--min-age", "soon"), "'--min-age'", "not a duration"),
    ],
)
def test_bad_flag_values_are_usage_errors_naming_the_flag(
    world: World, args: tuple[str, ...], flag: str, problem: str
) -> None:
    result = cli(world.stack, *args)
    assert result.exit_code == 2
    assert flag in result.stderr
    assert problem in result.stderr
    assert "Traceback" not in result.output
