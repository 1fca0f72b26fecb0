"""The access-review rules decided by one event, their thresholds and their edge cases."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from p0_receiver.core.errors import ConfigurationError
from p0_receiver.core.events import parse_notification
from p0_receiver.core.findings import (
    RULES,
    RuleId,
    event_findings,
    parse_business_hours,
)
from p0_receiver.core.record import AuditRecord, build_audit_record, message_attributes
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
from p0_receiver.settings import load_operator_settings
from tests.unit.audit_records import TOKEN

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # a Tuesday


def policy(**environ: str) -> Any:
    return load_operator_settings({"GOOGLE_CLOUD_PROJECT": "p", **environ}).review_policy()


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def approval(
    *,
    approver: str | None = "bob@corp.example",
    principal: str = "alice@corp.example",
    requestor: str | None = "alice@corp.example",
    approved: datetime = NOW,
    source: str = "slack",
    expiry: datetime | None = None,
    event_type: str = "request-approved",
) -> AuditRecord:
    details: dict[str, Any] = {"approvalSource": source, "approvedTimestamp": ms(approved)}
    if approver is not None:
        details["email"] = approver
    data: dict[str, Any] = {
        "id": "Req1",
        "principal": principal,
        "requestedTimestamp": ms(approved - timedelta(minutes=5)),
        "lastUpdatedTimestamp": ms(approved),
        "approvalDetails": details,
    }
    if requestor is not None:
        data["requestor"] = requestor
    if expiry is not None:
        data["expiryTimestamp"] = ms(expiry)
    raw = json.dumps({"id": "n", "name": "N", "eventType": event_type, "data": data}).encode()
    return build_audit_record(parse_notification(raw), TOKEN, received_at=NOW, retention_days=0)


def test_the_catalogue_has_the_seven_rules_with_stable_ids() -> None:
    assert [rule.id for rule in RULES] == [
        "self-approval",
        "never-ended",
        "no-human-approval",
        "long-grant",
        "rubber-stamp",
        "off-hours-approval",
        "incomplete-lifecycle",
    ]
    assert {rule.id for rule in RULES if rule.on_receipt} == {
        "self-approval",
        "no-human-approval",
        "long-grant",
        "off-hours-approval",
    }
    assert all(rule.rationale and "\n" not in rule.rationale for rule in RULES)


def test_an_ordinary_approval_in_business_hours_raises_nothing() -> None:
    assert event_findings(approval(), policy()) == ()


def test_p0s_documented_preapproval_is_a_self_approval() -> None:
    record = build_audit_record(
        parse_notification(PREAPPROVAL_CREATED), TOKEN, received_at=NOW, retention_days=0
    )
    found = event_findings(record, policy())
    assert found[0] == RuleId.SELF_APPROVAL
    # 1994-10-20 10:30 UTC was a Thursday, inside the default hours.
    assert RuleId.OFF_HOURS_APPROVAL not in found


@pytest.mark.parametrize(
    ("approver", "principal", "requestor"),
    [
        ("Alice@Corp.Example", "alice@corp.example", None),  # differing case
        (" alice@corp.example ", "bob@corp.example", "ALICE@corp.example"),  # the requester
    ],
)
def test_self_approval_ignores_case_and_blanks(
    approver: str, principal: str, requestor: str | None
) -> None:
    record = approval(approver=approver, principal=principal, requestor=requestor)
    assert event_findings(record, policy()) == (RuleId.SELF_APPROVAL,)


def test_a_missing_approver_is_no_self_approval_but_no_human_approval() -> None:
    assert event_findings(approval(approver=None), policy()) == (RuleId.NO_HUMAN_APPROVAL,)


@pytest.mark.parametrize(("source", "automatic"), [("Auto", True), ("webapp", False)])
def test_automatic_approval_sources(source: str, automatic: bool) -> None:
    found = event_findings(approval(source=source), policy())
    assert (RuleId.NO_HUMAN_APPROVAL in found) is automatic


def test_automatic_sources_are_a_setting() -> None:
    found = event_findings(
        approval(source="webapp"), policy(REVIEW_AUTOMATIC_APPROVAL_SOURCES="WebApp, bot")
    )
    assert found == (RuleId.NO_HUMAN_APPROVAL,)


def test_long_grant_from_the_planned_expiry_in_the_body() -> None:
    hours = policy(REVIEW_LONG_GRANT_HOURS="4")
    assert event_findings(approval(expiry=NOW + timedelta(hours=4)), hours) == ()
    longer = approval(expiry=NOW + timedelta(hours=4, seconds=1))
    assert event_findings(longer, hours) == (RuleId.LONG_GRANT,)


@pytest.mark.parametrize(
    ("moment", "off"),
    [
        (datetime(2026, 3, 10, 7, 59, tzinfo=UTC), True),
        (datetime(2026, 3, 10, 8, 0, tzinfo=UTC), False),
        (datetime(2026, 3, 10, 17, 59, tzinfo=UTC), False),
        (datetime(2026, 3, 10, 18, 0, tzinfo=UTC), True),  # the window ends at 18:00
        (datetime(2026, 3, 14, 12, 0, tzinfo=UTC), True),  # a Saturday
    ],
)
def test_business_hours_edges_in_utc(moment: datetime, off: bool) -> None:
    found = event_findings(approval(approved=moment), policy())
    assert (RuleId.OFF_HOURS_APPROVAL in found) is off


def test_business_hours_follow_the_time_zone_and_its_daylight_saving() -> None:
    berlin = policy(REVIEW_TIMEZONE="Europe/Berlin")
    # 07:30 UTC is 08:30 in Berlin in winter (CET) and 09:30 after the spring change (CEST).
    assert event_findings(approval(approved=datetime(2026, 3, 27, 7, 30, tzinfo=UTC)), berlin) == ()
    # 06:30 UTC: 07:30 CET (off hours) on Friday 27 March, 08:30 CEST (in hours) on Monday
    # 30 March, the first weekday after the change on the 29th.
    early_winter = approval(approved=datetime(2026, 3, 27, 6, 30, tzinfo=UTC))
    early_summer = approval(approved=datetime(2026, 3, 30, 6, 30, tzinfo=UTC))
    assert event_findings(early_winter, berlin) == (RuleId.OFF_HOURS_APPROVAL,)
    assert event_findings(early_summer, berlin) == ()
    # Late Friday in New York is Saturday in UTC: the local day decides.
    new_york = policy(REVIEW_TIMEZONE="America/New_York")
    friday_evening = approval(approved=datetime(2026, 3, 14, 1, 0, tzinfo=UTC))  # 21:00 EDT
    assert event_findings(friday_evening, new_york) == (RuleId.OFF_HOURS_APPROVAL,)
    friday_afternoon = approval(approved=datetime(2026, 3, 13, 21, 0, tzinfo=UTC))  # 17:00 EDT
    assert event_findings(friday_afternoon, new_york) == ()


def test_business_hours_parse_ranges_lists_and_wraps() -> None:
    assert parse_business_hours("Sun-Thu 09:00-17:00").weekdays == {6, 0, 1, 2, 3}
    assert parse_business_hours("mon,wed , fri 00:00-24:00").weekdays == {0, 2, 4}
    for bad in ("Mon-Fri", "Mon-Fri 18:00-08:00", "Mon-Fry 08:00-18:00", "Mon-Fri 25:00-26:00"):
        with pytest.raises(ValueError, match=r"must|days are|times are"):
            parse_business_hours(bad)


@pytest.mark.parametrize(
    "environ",
    [
        {"REVIEW_TIMEZONE": "Mars/Olympus_Mons"},
        {"REVIEW_BUSINESS_HOURS": "always"},
        {"REVIEW_LONG_GRANT_HOURS": "0"},
        {"REVIEW_FAST_APPROVAL_SECONDS": "3601"},
    ],
)
def test_bad_review_settings_stop_the_start_naming_the_variable(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as refused:
        policy(**environ)
    assert next(iter(environ)) in str(refused.value)


def test_only_approval_events_raise_findings_on_receipt() -> None:
    expired = approval(approver="alice@corp.example", event_type="request-expired")
    assert event_findings(expired, policy()) == ()


def test_findings_reach_the_message_attribute_in_catalogue_order() -> None:
    record = approval(approver="ALICE@corp.example", approved=datetime(2026, 3, 14, tzinfo=UTC))
    record["findings"] = list(event_findings(record, policy()))
    attributes = message_attributes(record)
    assert attributes["findings"] == "self-approval,off-hours-approval"
    plain = approval()
    assert "findings" not in message_attributes(plain)
    assert "findings" not in plain


def test_the_receiver_records_and_publishes_the_findings_of_one_event() -> None:
    from tests.unit.test_service import World

    world = World()
    world.service._policy = replace(world.service._policy, review=policy())
    outcome = world.deliver(PREAPPROVAL_CREATED)
    record = world.only_record()
    assert record["findings"] == ["self-approval"] == list(outcome.findings)
    ((_, data, attributes),) = world.publisher.messages
    assert data == PREAPPROVAL_CREATED
    assert attributes["findings"] == "self-approval"
    # Apart from the new field the record is what it was without the rules.
    without = World()
    without.deliver(PREAPPROVAL_CREATED)
    plain = without.only_record()
    tokenless = ("findings", "token")  # each delivery had its own token
    assert {k: v for k, v in record.items() if k not in tokenless} == {
        k: v for k, v in plain.items() if k != "token"
    }
    assert "findings" not in without.publisher.messages[0][2]
