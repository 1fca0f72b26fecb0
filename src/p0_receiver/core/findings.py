"""Access-review findings: the rule catalogue, its thresholds, and the rules that need one event.

Rule ids are a public contract (the record's ``findings``, the message's ``findings``
attribute, the log line, the report, alerting). The rules over a whole request lifecycle are
in ``p0_receiver.core.lifecycle``; both read only fields derived from P0's body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Final

from p0_receiver.core.record import RecordField


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class RuleId:
    """The stable ids of the rules (kebab-case, as subscribers and alerts spell them)."""

    SELF_APPROVAL: Final = "self-approval"
    NEVER_ENDED: Final = "never-ended"
    NO_HUMAN_APPROVAL: Final = "no-human-approval"
    LONG_GRANT: Final = "long-grant"
    RUBBER_STAMP: Final = "rubber-stamp"
    OFF_HOURS_APPROVAL: Final = "off-hours-approval"
    INCOMPLETE_LIFECYCLE: Final = "incomplete-lifecycle"


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    rationale: str
    # Decided from one event's body as it is received (stored on the record, on the message).
    on_receipt: bool


# The catalogue's order is every list's order: ``self-approval`` always comes first in a
# ``findings`` attribute, so ``hasPrefix(attributes.findings, "self-approval")`` selects it.
RULES: tuple[Rule, ...] = (
    Rule(
        RuleId.SELF_APPROVAL,
        Severity.HIGH,
        "the approver is the principal or the requester: no second person agreed",
        True,
    ),
    Rule(
        RuleId.NEVER_ENDED,
        Severity.HIGH,
        "no expiry or revocation was recorded by the grant's expected end plus the grace",
        False,
    ),
    Rule(
        RuleId.NO_HUMAN_APPROVAL,
        Severity.INFO,
        "granted by a pre-approval or an automatic path, or with no approver named",
        True,
    ),
    Rule(
        RuleId.LONG_GRANT,
        Severity.MEDIUM,
        "granted for longer than REVIEW_LONG_GRANT_HOURS",
        True,
    ),
    Rule(
        RuleId.RUBBER_STAMP,
        Severity.MEDIUM,
        "approved less than REVIEW_FAST_APPROVAL_SECONDS after it was requested",
        False,
    ),
    Rule(
        RuleId.OFF_HOURS_APPROVAL,
        Severity.LOW,
        "approved outside REVIEW_BUSINESS_HOURS in REVIEW_TIMEZONE",
        True,
    ),
    Rule(
        RuleId.INCOMPLETE_LIFECYCLE,
        Severity.MEDIUM,
        "an approval or an end was recorded for a request whose creation never was",
        False,
    ),
)
RULES_BY_ID: Mapping[str, Rule] = {rule.id: rule for rule in RULES}
_RULE_ORDER = {rule.id: position for position, rule in enumerate(RULES)}


def in_catalogue_order(rule_ids: set[str] | frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(rule_ids, key=_RULE_ORDER.__getitem__))


# --- business hours -------------------------------------------------------------------------

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(
    r"^\s*(?P<days>[A-Za-z]{3}(?:\s*-\s*[A-Za-z]{3})?(?:\s*,\s*[A-Za-z]{3}(?:\s*-\s*[A-Za-z]{3})?)*)"
    r"\s+(?P<start>\d{2}:\d{2})\s*-\s*(?P<end>\d{2}:\d{2})\s*$"
)


@dataclass(frozen=True)
class BusinessHours:
    """Weekdays (Monday is 0) and a daily window ``[start, end)`` in local time."""

    weekdays: frozenset[int]
    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        return local.weekday() in self.weekdays and self.start <= local.time() < self.end


def _clock(text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours == 24 and minutes == 0:
        return time.max
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise ValueError("times are HH:MM, 00:00 to 24:00")
    return time(hours, minutes)


def parse_business_hours(text: str) -> BusinessHours:
    """``Mon-Fri 08:00-18:00``; days as ranges or lists (``Mon,Wed,Fri``, ``Sun-Thu``)."""
    match = _HOURS.match(text)
    if match is None:
        raise ValueError("must look like 'Mon-Fri 08:00-18:00' (days, then HH:MM-HH:MM)")
    weekdays: set[int] = set()
    for part in match.group("days").split(","):
        ends = [name.strip().lower() for name in part.split("-")]
        if any(name not in _DAYS for name in ends):
            raise ValueError(f"days are {', '.join(name.title() for name in _DAYS)}")
        first, last = _DAYS.index(ends[0]), _DAYS.index(ends[-1])
        # A range may wrap over the week's end (Sun-Thu).
        span = (last - first) % 7
        weekdays.update((first + offset) % 7 for offset in range(span + 1))
    start, end = _clock(match.group("start")), _clock(match.group("end"))
    if start >= end:
        raise ValueError("the window must end after it starts, within one day")
    return BusinessHours(frozenset(weekdays), start, end)


# --- the policy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewPolicy:
    """The rules' thresholds (the ``REVIEW_*`` settings)."""

    long_grant: timedelta
    fast_approval: timedelta
    business_hours: BusinessHours
    timezone: tzinfo
    never_ended_grace: timedelta
    # approvalSource values that name no person (lower case); P0 has not published the list.
    automatic_sources: frozenset[str]

    def off_hours(self, moment: datetime) -> bool:
        return not self.business_hours.contains(moment.astimezone(self.timezone))


# Event types that carry an approval decision: the rules on receipt look at these only, so a
# later expiry that repeats the approval block does not raise the same finding again.
APPROVAL_EVENT_TYPES = frozenset({"request-approved", "preapproval-created"})
# Where P0 puts the approval's time, the grant's start and its planned end (p0Times names).
APPROVED_AT_FIELDS = ("approvedTimestamp", "approvalTimestamp")
GRANT_START_FIELDS = ("grantTimestamp", "startsAt")
GRANT_END_FIELDS = ("expiryTimestamp", "endsAt")


def same_person(left: str | None, right: str | None) -> bool:
    """Email addresses compare without case and surrounding blanks (P0 users type them)."""
    if not left or not right:
        return False
    return left.strip().casefold() == right.strip().casefold()


def first_time(times: Mapping[str, Any], names: tuple[str, ...]) -> datetime | None:
    for name in names:
        value = times.get(name)
        if isinstance(value, datetime):
            return value
    return None


def is_self_approval(approver: str | None, principal: str | None, requestor: str | None) -> bool:
    return same_person(approver, principal) or same_person(approver, requestor)


def is_automatic(approver: str | None, source: str | None, policy: ReviewPolicy) -> bool:
    if not approver:
        return True  # approved, and nobody is named as having approved it
    return source is not None and source.strip().casefold() in policy.automatic_sources


def planned_duration(times: Mapping[str, Any]) -> timedelta | None:
    """Grant length as the body states it: planned end minus grant start (or approval)."""
    end = first_time(times, GRANT_END_FIELDS)
    start = first_time(times, GRANT_START_FIELDS) or first_time(times, APPROVED_AT_FIELDS)
    if end is None or start is None or end < start:
        return None
    return end - start


def event_findings(record: Mapping[str, Any], policy: ReviewPolicy) -> tuple[str, ...]:
    """The rules decided by one event's own fields (those of ``derived_fields``).

    Only an approval event raises them. Catalogue order; empty when nothing applies.
    """
    if record.get(RecordField.EVENT_TYPE) not in APPROVAL_EVENT_TYPES:
        return ()
    times: Mapping[str, Any] = record.get(RecordField.P0_TIMES) or {}
    approver = record.get(RecordField.APPROVER)
    found: set[str] = set()
    if is_self_approval(
        approver, record.get(RecordField.PRINCIPAL), record.get(RecordField.REQUESTOR)
    ):
        found.add(RuleId.SELF_APPROVAL)
    if is_automatic(approver, record.get(RecordField.APPROVAL_SOURCE), policy):
        found.add(RuleId.NO_HUMAN_APPROVAL)
    duration = planned_duration(times)
    if duration is not None and duration > policy.long_grant:
        found.add(RuleId.LONG_GRANT)
    approved_at = first_time(times, APPROVED_AT_FIELDS)
    if approved_at is not None and policy.off_hours(approved_at):
        found.add(RuleId.OFF_HOURS_APPROVAL)
    return in_catalogue_order(found)
