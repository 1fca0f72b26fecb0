"""The access review of one period: lifecycles streamed from the audit log, their findings,
the summary figures and chart series, and the per-record integrity tally.

Records are read once, in P0's time order, page by page. A lifecycle is held only while it
is open; one that started before the period, or is still open at its end, is read whole
through ``audit timeline``'s query. What stays in memory grows with the number of requests
(one id, two durations each), never with the records or their bodies.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from p0_receiver.core.findings import RULES, ReviewPolicy
from p0_receiver.core.integrity import check_integrity
from p0_receiver.core.lifecycle import (
    Lifecycle,
    LifecycleFinding,
    fold_timeline,
    lifecycle_findings,
)
from p0_receiver.core.queries import REVIEW_PERIOD
from p0_receiver.core.record import AuditRecord, RecordField, rfc3339
from p0_receiver.ports import AuditReader
from p0_receiver.usecases.audit.views import timeline

REVIEW_SCHEMA = "p0-receiver/access-review/1"
TOP_RESOURCES = 10
# Time-to-approve histogram bins (upper bounds in seconds): a few, in human units.
_APPROVAL_BUCKETS = (
    ("< 1 min", 60.0),
    ("1-5 min", 300.0),
    ("5-15 min", 900.0),
    ("15-60 min", 3600.0),
    ("1-4 h", 4 * 3600.0),
    ("4-24 h", 86400.0),
    ("> 1 day", math.inf),
)


@dataclass(frozen=True)
class ReviewedLifecycle:
    lifecycle: Lifecycle
    findings: tuple[LifecycleFinding, ...]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def _seconds(length: timedelta | None) -> float | None:
    return None if length is None else round(length.total_seconds(), 3)


ROW_COLUMNS = (
    "objectId",
    "kind",
    "outcome",
    "requester",
    "principal",
    "permission",
    "integration",
    "access",
    "reason",
    "approver",
    "approverName",
    "approvalSource",
    "requestedAt",
    "approvedAt",
    "grantedAt",
    "endedAt",
    "plannedEnd",
    "timeToApproveSeconds",
    "grantSeconds",
    "findings",
    "events",
)


def lifecycle_row(reviewed: ReviewedLifecycle) -> dict[str, Any]:
    """One row of the report (its JSON ``rows`` item and CSV line): P0's text as typed."""
    life = reviewed.lifecycle
    return {
        "objectId": life.object_id,
        "kind": life.kind,
        "outcome": life.outcome,
        "requester": life.requester,
        "principal": life.principal,
        "permission": life.permission,
        "integration": life.integration,
        "access": life.access,
        "reason": life.reason,
        "approver": life.approver,
        "approverName": life.approver_name,
        "approvalSource": life.approval_source,
        "requestedAt": _iso(life.requested_at),
        "approvedAt": _iso(life.approved_at),
        "grantedAt": _iso(life.granted_at),
        "endedAt": _iso(life.ended_at),
        "plannedEnd": _iso(life.planned_end),
        "timeToApproveSeconds": _seconds(life.time_to_approve),
        "grantSeconds": _seconds(life.grant_length),
        "findings": ",".join(finding.rule for finding in reviewed.findings),
        "events": life.events,
    }


def review_lifecycles(
    reader: AuditReader,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    policy: ReviewPolicy,
    notifier: str | None = None,
    on_record: Callable[[AuditRecord], None] | None = None,
) -> Iterator[ReviewedLifecycle]:
    """Every lifecycle with an event in ``[start, end)`` (P0's time), once each.

    A lifecycle is yielded when it closes, or at the end of the period; one whose creation is
    not in the period, or that is still open, is read again whole through its timeline, so
    events before or after the period complete it.
    """
    equals = {RecordField.NOTIFIER_ID: notifier} if notifier else {}
    open_ones: dict[str, Lifecycle] = {}
    done: set[str] = set()

    def finished(lifecycle: Lifecycle) -> ReviewedLifecycle:
        done.add(lifecycle.object_id)
        if not lifecycle.created or not lifecycle.closed:
            lifecycle = fold_timeline(lifecycle.object_id, timeline(reader, lifecycle.object_id))
        return ReviewedLifecycle(lifecycle, tuple(lifecycle_findings(lifecycle, policy, now=now)))

    for record in reader.scan(REVIEW_PERIOD, equals=equals, lower=start, upper=end):
        if on_record is not None:
            on_record(record)
        object_id = record.get(RecordField.OBJECT_ID)
        if not isinstance(object_id, str) or object_id in done:
            continue
        lifecycle = open_ones.get(object_id)
        if lifecycle is None:
            lifecycle = open_ones[object_id] = Lifecycle(object_id)
        lifecycle.add(record)
        if lifecycle.closed:
            del open_ones[object_id]
            yield finished(lifecycle)
    for lifecycle in open_ones.values():
        yield finished(lifecycle)


def _week(moment: datetime) -> str:
    """ISO week of the moment, as its Monday's date (sorts, reads as a date on a chart)."""
    day = moment.astimezone(UTC).date()
    return (day - timedelta(days=day.weekday())).isoformat()


def _percentile(values: array[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return None
    rank = max(1, math.ceil(fraction * len(values)))
    return values[rank - 1]


@dataclass
class IntegrityTally:
    """``audit show``'s integrity check over every record of the period."""

    checked: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    # Kept for the statement; the count keeps going past it.
    max_listed: int = 50

    def add(self, record: Mapping[str, Any]) -> None:
        self.checked += 1
        report = check_integrity(record)
        if not report.ok:
            self.failed += 1
            if len(self.failures) < self.max_listed:
                self.failures.append(
                    (str(record.get(RecordField.EVENT_ID, "")), "; ".join(report.problems))
                )


@dataclass
class ReviewSummary:
    """The summary figures and the chart series, folded one lifecycle at a time."""

    lifecycles: int = 0
    requests: int = 0
    preapprovals: int = 0
    grants: int = 0
    denials: int = 0
    requesters: set[str] = field(default_factory=set)
    approvers: set[str] = field(default_factory=set)
    approve_seconds: array[float] = field(default_factory=lambda: array("d"))
    grant_seconds: array[float] = field(default_factory=lambda: array("d"))
    grants_by_week: Counter[tuple[str, str]] = field(default_factory=Counter)
    resources: Counter[str] = field(default_factory=Counter)
    findings_by_week: Counter[tuple[str, str]] = field(default_factory=Counter)
    findings_by_rule: Counter[str] = field(default_factory=Counter)

    def add(self, reviewed: ReviewedLifecycle) -> None:
        life = reviewed.lifecycle
        self.lifecycles += 1
        if life.kind == "preapproval":
            self.preapprovals += 1
        else:
            self.requests += 1
        if life.outcome == "denied":
            self.denials += 1
        who = life.requester or life.principal
        if who:
            self.requesters.add(who.strip().casefold())
        if life.approver:
            self.approvers.add(life.approver.strip().casefold())
        week_of = life.requested_at or life.first_seen
        if life.granted:
            self.grants += 1
            if life.granted_at is not None:
                self.grants_by_week[(_week(life.granted_at), life.access or "(none)")] += 1
            if life.permission:
                self.resources[life.permission] += 1
            if (length := life.grant_length) is not None:
                self.grant_seconds.append(length.total_seconds())
        if (waited := life.time_to_approve) is not None:
            self.approve_seconds.append(waited.total_seconds())
        for finding in reviewed.findings:
            self.findings_by_rule[finding.rule] += 1
            if week_of is not None:
                self.findings_by_week[(_week(week_of), finding.rule)] += 1

    def figures(self) -> dict[str, Any]:
        approve = array("d", sorted(self.approve_seconds))
        grant = array("d", sorted(self.grant_seconds))
        return {
            "lifecycles": self.lifecycles,
            "requests": self.requests,
            "preapprovals": self.preapprovals,
            "grants": self.grants,
            "denials": self.denials,
            "distinctRequesters": len(self.requesters),
            "distinctApprovers": len(self.approvers),
            "medianTimeToApproveSeconds": _percentile(approve, 0.5),
            "p95TimeToApproveSeconds": _percentile(approve, 0.95),
            "medianGrantSeconds": _percentile(grant, 0.5),
            "longestGrantSeconds": grant[-1] if grant else None,
            "findings": {rule.id: self.findings_by_rule.get(rule.id, 0) for rule in RULES},
        }

    def _approval_buckets(self) -> list[dict[str, Any]]:
        counts = Counter(
            next(label for label, upper in _APPROVAL_BUCKETS if seconds < upper)
            for seconds in self.approve_seconds
        )
        return [
            {"bucket": label, "order": order, "requests": counts.get(label, 0)}
            for order, (label, _) in enumerate(_APPROVAL_BUCKETS)
        ]

    def series(self) -> dict[str, list[dict[str, Any]]]:
        """The charts' data: small (weeks, rules, the top resources), whatever the period."""
        return {
            "grantsPerWeek": [
                {"week": week, "access": access, "grants": count}
                for (week, access), count in sorted(self.grants_by_week.items())
            ],
            "timeToApprove": self._approval_buckets(),
            "topResources": [
                {"resource": name, "grants": count}
                for name, count in self.resources.most_common(TOP_RESOURCES)
            ],
            "findingsPerWeek": [
                {"week": week, "rule": rule, "findings": count}
                for (week, rule), count in sorted(self.findings_by_week.items())
            ],
        }
