"""One P0 request's (or pre-approval's) lifecycle, folded from its timeline, and the rules
that need the whole lifecycle.

A lifecycle is built from the records ``audit timeline`` reads (one object id, P0's time
order); it reads only fields derived from the body, never the body itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from p0_receiver.core.events import PREAPPROVAL_CREATED
from p0_receiver.core.findings import (
    APPROVED_AT_FIELDS,
    GRANT_END_FIELDS,
    GRANT_START_FIELDS,
    ReviewPolicy,
    RuleId,
    first_time,
    in_catalogue_order,
    is_automatic,
    is_self_approval,
)
from p0_receiver.core.record import RecordField

REQUEST_CREATED = "request-created"
REQUEST_APPROVED = "request-approved"
# Events that end a grant, and the outcome each gives the lifecycle.
_ENDS = {"request-expired": "expired", "request-revoked": "revoked"}
# Events after which nothing more is expected: a grant's end, or no grant at all.
_CLOSES = {**_ENDS, "request-denied": "denied", "request-errored": "errored"}


@dataclass(frozen=True)
class LifecycleFinding:
    rule: str
    detail: str


@dataclass
class Lifecycle:
    """What an auditor reads about one request: who, what, why, who approved it, when."""

    object_id: str
    kind: str = "request"  # "request" or "preapproval"
    outcome: str = "pending"  # pending, granted, expired, revoked, denied, errored, preapproved
    events: int = 0
    first_event_id: str | None = None
    created: bool = False
    requester: str | None = None
    principal: str | None = None
    permission: str | None = None
    integration: str | None = None
    access: str | None = None
    reason: str | None = None
    approver: str | None = None
    approver_name: str | None = None
    approval_source: str | None = None
    requested_at: datetime | None = None
    approved_at: datetime | None = None
    granted_at: datetime | None = None
    planned_end: datetime | None = None
    ended_at: datetime | None = None
    first_seen: datetime | None = None
    event_ids: list[str] = field(default_factory=list)

    def add(self, record: Mapping[str, Any]) -> None:
        """Fold one more record of this object, in P0's time order."""
        event_type = str(record.get(RecordField.EVENT_TYPE) or "")
        occurred = record.get(RecordField.OCCURRED_AT)
        occurred_at = occurred if isinstance(occurred, datetime) else None
        times: Mapping[str, Any] = record.get(RecordField.P0_TIMES) or {}
        self.events += 1
        event_id = str(record.get(RecordField.EVENT_ID) or "")
        self.event_ids.append(event_id)
        if self.first_event_id is None:
            self.first_event_id = event_id
            self.first_seen = occurred_at
        # Who and what: the first value P0 gave wins (a later event may only repeat it).
        for name, key in (
            ("requester", RecordField.REQUESTOR),
            ("principal", RecordField.PRINCIPAL),
            ("permission", RecordField.PERMISSION_NAME),
            ("integration", RecordField.INTEGRATION),
            ("access", RecordField.ACCESS),
            ("reason", RecordField.REASON),
        ):
            value = record.get(key)
            if getattr(self, name) is None and isinstance(value, str):
                setattr(self, name, value)
        self.requested_at = self.requested_at or first_time(
            times, ("requestedTimestamp", "createdAt")
        )
        if event_type == PREAPPROVAL_CREATED:
            self.kind = "preapproval"
            self.created = True
            self.outcome = "preapproved"
        elif event_type == REQUEST_CREATED:
            self.created = True
            self.requested_at = self.requested_at or occurred_at
        if event_type in (REQUEST_APPROVED, PREAPPROVAL_CREATED):
            self.approver = record.get(RecordField.APPROVER)
            self.approver_name = record.get(RecordField.APPROVER_NAME)
            self.approval_source = record.get(RecordField.APPROVAL_SOURCE)
            self.approved_at = first_time(times, APPROVED_AT_FIELDS) or occurred_at
            self.granted_at = first_time(times, GRANT_START_FIELDS) or self.approved_at
            if self.kind == "request" and self.outcome == "pending":
                self.outcome = "granted"
        if event_type not in _ENDS:
            self.planned_end = first_time(times, GRANT_END_FIELDS) or self.planned_end
        if event_type in _CLOSES:
            self.outcome = _CLOSES[event_type]
            if event_type in _ENDS:
                self.ended_at = occurred_at
                if self.granted_at is None and self.approved_at is None:
                    self.granted_at = first_time(times, GRANT_START_FIELDS)

    @property
    def closed(self) -> bool:
        """Nothing more is expected for it (its timeline need not be read again)."""
        return self.kind == "preapproval" or self.outcome in _CLOSES.values()

    @property
    def granted(self) -> bool:
        return self.kind == "request" and self.outcome in ("granted", *_ENDS.values())

    @property
    def time_to_approve(self) -> timedelta | None:
        if self.kind != "request" or self.approved_at is None or self.requested_at is None:
            return None
        if self.approved_at < self.requested_at:
            return None  # P0's clocks disagree: no duration rather than a negative one
        return self.approved_at - self.requested_at

    @property
    def grant_length(self) -> timedelta | None:
        """How long access lasted (ended), or was planned to last (not ended yet)."""
        end = self.ended_at or self.planned_end
        if self.granted_at is None or end is None or end < self.granted_at:
            return None
        return end - self.granted_at

    def expected_end(self, policy: ReviewPolicy) -> datetime | None:
        if self.planned_end is not None:
            return self.planned_end
        return None if self.granted_at is None else self.granted_at + policy.long_grant


def fold_timeline(object_id: str, records: Iterable[Mapping[str, Any]]) -> Lifecycle:
    """The lifecycle of one object from its timeline (``audit timeline``'s records)."""
    lifecycle = Lifecycle(object_id)
    for record in records:
        lifecycle.add(record)
    return lifecycle


def _hours(length: timedelta) -> str:
    return f"{length.total_seconds() / 3600:.1f} h"


def lifecycle_findings(
    lifecycle: Lifecycle, policy: ReviewPolicy, *, now: datetime
) -> list[LifecycleFinding]:
    """Every rule over one lifecycle, in catalogue order, each with a one-line detail."""
    found: dict[str, str] = {}
    approved = lifecycle.approved_at is not None
    if approved and is_self_approval(lifecycle.approver, lifecycle.principal, lifecycle.requester):
        found[RuleId.SELF_APPROVAL] = "approved by the principal or the requester themselves"
    if lifecycle.granted:
        expected = lifecycle.expected_end(policy)
        if (
            lifecycle.ended_at is None
            and expected is not None
            and now > expected + policy.never_ended_grace
        ):
            found[RuleId.NEVER_ENDED] = (
                f"no expiry or revocation recorded; expected to end {expected.isoformat()}"
            )
    if approved and is_automatic(lifecycle.approver, lifecycle.approval_source, policy):
        found[RuleId.NO_HUMAN_APPROVAL] = (
            f"approval source {lifecycle.approval_source!r}"
            if lifecycle.approver
            else "no approver named"
        )
    length = lifecycle.grant_length
    if length is not None and length > policy.long_grant:
        found[RuleId.LONG_GRANT] = f"granted for {_hours(length)}"
    waited = lifecycle.time_to_approve
    if waited is not None and waited < policy.fast_approval:
        found[RuleId.RUBBER_STAMP] = f"approved {waited.total_seconds():.0f} s after the request"
    if lifecycle.approved_at is not None and policy.off_hours(lifecycle.approved_at):
        local = lifecycle.approved_at.astimezone(policy.timezone)
        found[RuleId.OFF_HOURS_APPROVAL] = f"approved {local.strftime('%a %Y-%m-%d %H:%M %Z')}"
    if lifecycle.kind == "request" and not lifecycle.created:
        found[RuleId.INCOMPLETE_LIFECYCLE] = "no request-created event was recorded"
    return [LifecycleFinding(rule, found[rule]) for rule in in_catalogue_order(set(found))]
