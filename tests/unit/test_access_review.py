"""The access review over an in-memory audit log: lifecycles, their findings, the report."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner, Result

from p0_receiver.adapters.clients import AuditBackends
from p0_receiver.core.events import parse_notification
from p0_receiver.core.lifecycle import fold_timeline, lifecycle_findings
from p0_receiver.core.record import AuditRecord, build_audit_record
from p0_receiver.entrypoints.cli import main
from p0_receiver.entrypoints.cli.operator import OperatorContext
from p0_receiver.settings import OperatorSettings, load_operator_settings
from tests.fakes import InMemoryAuditLog, InMemoryAuditReader
from tests.unit.audit_records import TOKEN

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday morning
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script> see javascript:alert(2) \u202egnp.exe"
POLICY = load_operator_settings({"GOOGLE_CLOUD_PROJECT": "acme"}).review_policy()


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def event(
    event_type: str,
    object_id: str,
    at: datetime,
    *,
    approver: str | None = "bob@acme.example",
    requested: datetime | None = None,
    reason: str = "INC-4711",
    **extra: Any,
) -> AuditRecord:
    data: dict[str, Any] = {
        "id": object_id,
        "type": "gcloud",
        "access": "role",
        "requestor": "alice@acme.example",
        "principal": "alice@acme.example",
        "permission": {"name": "roles/cloudsql.client on prod-db", "description": "d"},
        "reason": reason,
        "requestedTimestamp": ms(requested or T0),
        "lastUpdatedTimestamp": ms(at),
        **extra,
    }
    if event_type != "request-created" and approver is not None:
        data["approvalDetails"] = {
            "approvalSource": "slack",
            "approvedTimestamp": ms(extra.pop("approved", at) if "approved" in extra else at),
            "email": approver,
        }
    raw = json.dumps({"id": "n", "name": "N", "eventType": event_type, "data": data}).encode()
    return build_audit_record(parse_notification(raw), TOKEN, received_at=at, retention_days=0)


def story(object_id: str, *, approve_after: timedelta, access: timedelta, **kw: Any) -> list[Any]:
    approved = T0 + approve_after
    return [
        event("request-created", object_id, T0, **kw),
        event("request-approved", object_id, approved, **kw),
        event("request-expired", object_id, approved + access, **kw),
    ]


def test_an_ordinary_lifecycle_has_no_finding() -> None:
    life = fold_timeline(
        "R1", story("R1", approve_after=timedelta(minutes=5), access=timedelta(hours=1))
    )
    assert (life.outcome, life.created, life.events) == ("expired", True, 3)
    assert life.time_to_approve == timedelta(minutes=5)
    assert life.grant_length == timedelta(hours=1)
    assert lifecycle_findings(life, POLICY, now=NOW) == []


def test_lifecycle_rules() -> None:
    fast = fold_timeline(
        "R2", story("R2", approve_after=timedelta(seconds=20), access=timedelta(hours=9))
    )
    assert [f.rule for f in lifecycle_findings(fast, POLICY, now=NOW)] == [
        "long-grant",
        "rubber-stamp",
    ]
    # Approved, never expired nor revoked: long past the default expected end.
    open_grant = fold_timeline(
        "R3", story("R3", approve_after=timedelta(minutes=5), access=timedelta())[:2]
    )
    assert [f.rule for f in lifecycle_findings(open_grant, POLICY, now=NOW)] == ["never-ended"]
    # Still within its planned end plus the grace: not yet.
    recent = fold_timeline(
        "R3", story("R3", approve_after=timedelta(minutes=5), access=timedelta())[:2]
    )
    assert lifecycle_findings(recent, POLICY, now=T0 + timedelta(hours=9)) == []
    orphan = fold_timeline(
        "R4", story("R4", approve_after=timedelta(minutes=5), access=timedelta(hours=1))[1:]
    )
    assert [f.rule for f in lifecycle_findings(orphan, POLICY, now=NOW)] == ["incomplete-lifecycle"]
    missing = fold_timeline(
        "R5",
        story("R5", approve_after=timedelta(minutes=5), access=timedelta(hours=1), approver=None),
    )
    assert [f.rule for f in lifecycle_findings(missing, POLICY, now=NOW)] == ["no-human-approval"]
    selfish = fold_timeline(
        "R6",
        story(
            "R6",
            approve_after=timedelta(minutes=5),
            access=timedelta(hours=1),
            approver="ALICE@acme.example",
        ),
    )
    assert [f.rule for f in lifecycle_findings(selfish, POLICY, now=NOW)] == ["self-approval"]


class Review:
    def __init__(self) -> None:
        self.audit = InMemoryAuditLog()
        self.context = OperatorContext(
            environ={"GOOGLE_CLOUD_PROJECT": "acme"}, clock=lambda: NOW, connect=self._backends
        )

    def _backends(self, _: OperatorSettings, __: int | None) -> Any:
        return AuditBackends(InMemoryAuditReader(self.audit), self.audit)

    def add(self, records: list[AuditRecord]) -> None:
        for record in records:
            self.audit.create(record)

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(
            main,
            ["report", "access-review", "--from", "2026-11-23", "--to", "2026-11-29", *args],
            obj=self.context,
        )


def seeded() -> Review:
    review = Review()
    review.add(story("R1", approve_after=timedelta(minutes=5), access=timedelta(hours=1)))
    review.add(
        story(
            "R2",
            approve_after=timedelta(minutes=5),
            access=timedelta(hours=1),
            approver="alice@acme.example",
            reason=HOSTILE,
        )
    )
    # Its creation lies before the period: the timeline completes it.
    early = story(
        "R3",
        approve_after=timedelta(days=2),
        access=timedelta(hours=1),
        requested=T0 - timedelta(days=2),
    )
    early[0] = event(
        "request-created", "R3", T0 - timedelta(days=2), requested=T0 - timedelta(days=2)
    )
    review.add(early)
    review.add([event("request-approved", "R4", T0 + timedelta(hours=1))])
    return review


def test_json_report_has_every_lifecycle_once_and_its_findings() -> None:
    result = seeded().run("--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == "p0-receiver/access-review/1"
    rows = {row["objectId"]: row for row in document["rows"]}
    assert sorted(rows) == ["R1", "R2", "R3", "R4"]
    assert rows["R3"]["events"] == 3  # the creation before the period was read too
    assert rows["R3"]["findings"] == ""
    assert rows["R2"]["findings"] == "self-approval"
    assert rows["R2"]["reason"] == HOSTILE
    assert rows["R4"]["findings"] == "never-ended,incomplete-lifecycle"
    assert document["summary"]["requests"] == 4
    assert document["summary"]["grants"] == 4
    assert document["summary"]["distinctApprovers"] == 2
    assert document["summary"]["findings"]["self-approval"] == 1
    assert [item["objectId"] for item in document["findings"]["self-approval"]] == ["R2"]
    assert document["integrity"]["ok"] is True
    assert document["integrity"]["recordsChecked"] == 9  # the period's records


def test_csv_rows_are_never_formulas() -> None:
    review = Review()
    review.add(
        story(
            "R9",
            approve_after=timedelta(minutes=5),
            access=timedelta(hours=1),
            reason='=HYPERLINK("x")',
        )
    )
    result = review.run("--format", "csv")
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert row["reason"] == '\'=HYPERLINK("x")'


def test_html_escapes_and_neutralises_p0_text() -> None:
    result = seeded().run()
    assert result.exit_code == 0, result.output
    page = result.stdout
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\u202e" not in page
    assert "\\u202e" in page
    assert "http://" not in page
    assert "https://" not in page
    assert 'href="javascript' not in page
    assert page.count("<svg") == 4
