"""Request stories for the access review: one of each finding, hostile text, and a plain one.

Each story is a few deliveries about one P0 request (or pre-approval), with P0 times in the
week before the one ``now`` is in, so a report of that week shows every rule. The bodies
follow ``samples.REQUEST_APPROVED`` (inferred from P0's CLI, not confirmed by P0).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from p0_receiver.devtools import simulator
from p0_receiver.devtools.samples import StoryDelivery, new_object_id

# P0 users type these: the report must show them as text, never obey them.
HOSTILE_SCRIPT = "<script>document.title='pwned'</script> restore billing export"
HOSTILE_LINK = "runbook: javascript:alert(document.domain) or https://evil.example/phish"
HOSTILE_BIDI = "invoice \u202egnp.exe\u202c review"
HOSTILE_RESOURCE = "<img src=x onerror=\"document.title='pwned'\"> on billing"

_PROD_DB = "roles/cloudsql.client on prod-db"


def review_week(now: datetime) -> tuple[datetime, datetime]:
    """The week the stories happen in: Monday 00:00 UTC of last week, and a week later."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=today.weekday() + 7)
    return start, start + timedelta(days=7)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Story:
    """One request: who asks for what and why, who approves it how, and what happens."""

    name: str
    requester: str
    resource: str
    reason: str
    requested: datetime
    approval: tuple[str, str, timedelta] | None  # approver email, source, delay after request
    access_for: timedelta | None  # planned length of the grant
    ends: str | None  # "request-expired", "request-revoked", "request-denied" or None
    created_recorded: bool = True

    def deliveries(self, object_id: str) -> list[StoryDelivery]:
        approved = None if self.approval is None else self.requested + self.approval[2]
        details: dict[str, Any] = {}
        if self.approval is not None and approved is not None:
            approver, source, _ = self.approval
            details = {
                "approvalSource": source,
                "approvedTimestamp": _ms(approved),
                "name": approver.split("@")[0].title(),
                "email": approver,
            }

        def delivery(event_type: str, at: datetime, status: str, **fields: Any) -> StoryDelivery:
            data = {
                "id": object_id,
                "type": "gcloud",
                "access": "role",
                "status": status,
                "requestor": self.requester,
                "principal": self.requester,
                "permission": {"name": self.resource, "description": f"{self.resource} (role)"},
                "reason": self.reason,
                "requestedTimestamp": _ms(self.requested),
                "lastUpdatedTimestamp": _ms(at),
                **fields,
            }
            envelope = {
                "id": "my-notifier-service",
                "name": "My Notifier Service",
                "eventType": event_type,
                "data": data,
            }
            return StoryDelivery(event_type, at, json.dumps(envelope, indent=2).encode())

        sent = []
        if self.created_recorded:
            sent.append(delivery("request-created", self.requested, "PENDING_APPROVAL"))
        if self.ends == "request-denied":
            denied = self.requested + timedelta(minutes=7)
            sent.append(delivery("request-denied", denied, "DENIED"))
            return sent
        if approved is None:
            return sent
        planned = {}
        if self.access_for is not None:
            planned = {"expiryTimestamp": _ms(approved + self.access_for)}
        sent.append(
            delivery("request-approved", approved, "APPROVED", approvalDetails=details, **planned)
        )
        if self.ends is not None and self.access_for is not None:
            ended = approved + self.access_for
            status = "EXPIRED" if self.ends == "request-expired" else "REVOKED"
            sent.append(delivery(self.ends, ended, status, approvalDetails=details, **planned))
        return sent


def review_stories(now: datetime) -> list[Story]:
    """A week of requests with every finding once or more, and two with none."""
    monday, _ = review_week(now)

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return monday + timedelta(days=day, hours=hour, minutes=minute)

    john = "john.smith@acme.example"
    hour = timedelta(hours=1)
    return [
        Story("ordinary", "jane.doe@acme.example", _PROD_DB, "Investigate incident INC-4711",
              at(1, 10), (john, "slack", timedelta(minutes=4)), hour, "request-expired"),
        Story("ordinary-revoked", "jane.doe@acme.example", _PROD_DB, "Rotate replica INC-4712",
              at(2, 11), (john, "webapp", timedelta(minutes=9)), hour, "request-revoked"),
        Story("self-approval", "omar.ali@acme.example", HOSTILE_RESOURCE, HOSTILE_SCRIPT,
              at(2, 14), ("Omar.Ali@ACME.example", "webapp", timedelta(minutes=2)), hour,
              "request-expired"),
        Story("off-hours", "sam.lee@acme.example", _PROD_DB, HOSTILE_LINK,
              at(5, 2, 30), (john, "slack", timedelta(minutes=6)), hour, "request-expired"),
        Story("never-ended", "lee.chan@acme.example", "roles/owner on prod",
              "Emergency schema fix", at(3, 9), (john, "slack", timedelta(minutes=10)),
              2 * hour, None),
        Story("rubber-stamp", "ana.ruiz@acme.example", _PROD_DB, HOSTILE_BIDI,
              at(3, 15), (john, "slack", timedelta(seconds=10)), hour, "request-expired"),
        Story("long-grant", "ana.ruiz@acme.example", "roles/storage.admin on exports",
              "Quarterly export", at(4, 9), (john, "webapp", timedelta(minutes=20)),
              12 * hour, "request-expired"),
        Story("no-human-approval", "bot.runner@acme.example", _PROD_DB, "Nightly job",
              at(4, 12), ("p0-automation@acme.example", "auto", timedelta(seconds=90)), hour,
              "request-expired"),
        Story("incomplete-lifecycle", "kim.park@acme.example", _PROD_DB, "Hotfix deploy",
              at(1, 16), (john, "slack", timedelta(minutes=5)), hour, "request-expired",
              created_recorded=False),
        Story("denied", "eve.black@acme.example", "roles/owner on prod", "just because",
              at(2, 9), None, None, "request-denied"),
    ]  # fmt: skip


def preapproval(now: datetime) -> StoryDelivery:
    """A pre-approval like P0's documented example: its approver is its principal."""
    monday, _ = review_week(now)
    created = monday + timedelta(days=1, hours=13)
    data = {
        "id": new_object_id(),
        "type": "ssh",
        "access": "session",
        "permission": {"name": "demo-node-1", "description": "sudo SSH access to demo-node-1"},
        "startsAt": _ms(created),
        "endsAt": _ms(created + timedelta(hours=4)),
        "createdAt": _ms(created),
        "principal": "john.smith@acme.example",
        "approver": {
            "id": "john.smith@acme.example",
            "name": "John Smith",
            "email": "john.smith@acme.example",
            "approvalTimestamp": _ms(created),
            "approvalSource": "webapp",
        },
        "reason": "Need to give a big customer a fancy demo",
    }
    envelope = {
        "id": "my-notifier-service",
        "name": "My Notifier Service",
        "eventType": "preapproval-created",
        "data": data,
    }
    return StoryDelivery("preapproval-created", created, json.dumps(envelope).encode())


@dataclass(frozen=True)
class SentReviewStories:
    object_ids: dict[str, str]  # story name -> P0 object id
    statuses: list[int]

    @property
    def accepted(self) -> bool:
        return all(status == 200 for status in self.statuses)


def send_review_stories(url: str, sign: Callable[[], str], *, now: datetime) -> SentReviewStories:
    """POST every story's deliveries (and the pre-approval), a fresh token for each."""
    object_ids: dict[str, str] = {}
    statuses: list[int] = []
    for story in review_stories(now):
        object_id = object_ids[story.name] = new_object_id()
        for delivery in story.deliveries(object_id):
            statuses.append(simulator.post_delivery(url, delivery.body, token=sign()).status)
    pre = preapproval(now)
    object_ids["preapproval"] = json.loads(pre.body)["data"]["id"]
    statuses.append(simulator.post_delivery(url, pre.body, token=sign()).status)
    return SentReviewStories(object_ids, statuses)
