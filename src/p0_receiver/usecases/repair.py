"""The repair use case: publish from the audit log what the topic lacks (redrive) or re-send it.

One implementation over the ports, for every caller (the operator CLI, a scheduled redrive).
Both publish through ``publish_record``, the receiver's own path, and neither publishes a
record that fails the integrity check: what goes to subscribers is what P0 sent, or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from p0_receiver.core.errors import DownstreamUnavailableError
from p0_receiver.core.filters import RecordFilter
from p0_receiver.core.integrity import check_integrity
from p0_receiver.core.record import AuditRecord, PublishStatus, RecordField
from p0_receiver.ports import AuditLog, AuditReader, EventPublisher
from p0_receiver.usecases.audit.views import pending_records, query_records
from p0_receiver.usecases.deliver import publish_record

# Stop after this many publish failures in a row: the topic is still down, and each failure
# costs a full publish timeout.
MAX_CONSECUTIVE_FAILURES = 3


class StepOutcome(StrEnum):
    PUBLISHED = "published"
    UNRECORDED = "unrecorded"  # published, but marking the record failed (a rerun re-sends it)
    FAILED = "failed"  # the publish failed; the record stays as it was
    SKIPPED = "skipped"  # already published by someone else meanwhile
    REFUSED = "refused"  # failed the integrity check: never published


@dataclass(frozen=True)
class RepairStep:
    """What happened to one record, as it happens (for a progress display or a log line)."""

    event_id: str
    outcome: StepOutcome
    problems: tuple[str, ...] = ()  # why the integrity check refused it
    failure: DownstreamUnavailableError | None = None


@dataclass
class RepairTally:
    published: int = 0
    skipped: int = 0
    failed: int = 0
    unrecorded: int = 0
    failed_integrity: int = 0
    consecutive_failures: int = 0
    stopped: bool = False  # gave up after MAX_CONSECUTIVE_FAILURES failures in a row

    @property
    def clean(self) -> bool:
        """Nothing failed, nothing was left unmarked, nothing was refused."""
        return not (self.failed or self.unrecorded or self.failed_integrity)

    def count(self, step: RepairStep) -> None:
        if step.outcome is StepOutcome.PUBLISHED:
            self.published += 1
        elif step.outcome is StepOutcome.UNRECORDED:
            self.unrecorded += 1
        elif step.outcome is StepOutcome.FAILED:
            self.failed += 1
        elif step.outcome is StepOutcome.SKIPPED:
            self.skipped += 1
        else:
            self.failed_integrity += 1


@dataclass(frozen=True)
class RepairPorts:
    """What a repair pass works on: the audit log (read and written) and the topic."""

    reader: AuditReader
    audit_log: AuditLog
    publisher: EventPublisher


StepListener = Callable[[RepairStep], None]


def _ignore(_: RepairStep) -> None:
    return None


def _refusal(record: AuditRecord) -> RepairStep | None:
    """The step that refuses ``record`` if it fails the integrity check."""
    report = check_integrity(record)
    if report.ok:
        return None
    return RepairStep(str(record.get(RecordField.EVENT_ID)), StepOutcome.REFUSED, report.problems)


def intact_records(
    records: Iterable[AuditRecord], on_step: StepListener = _ignore
) -> Iterator[AuditRecord]:
    """The records that pass the integrity check; each one refused is reported as a step."""
    for record in records:
        refusal = _refusal(record)
        if refusal is None:
            yield record
        else:
            on_step(refusal)


class _Run:
    """One repair run: publishes, counts, reports each step, stops when the topic keeps failing."""

    def __init__(
        self,
        audit_log: AuditLog,
        publisher: EventPublisher,
        clock: Callable[[], datetime],
        on_step: StepListener,
    ) -> None:
        self._audit_log = audit_log
        self._publisher = publisher
        self._clock = clock
        self._on_step = on_step
        self.tally = RepairTally()

    def report(self, step: RepairStep) -> None:
        self.tally.count(step)
        self._on_step(step)

    def publish(self, record: AuditRecord, *, replay: bool) -> bool:
        """Publish one record; False when it is time to stop (the topic keeps failing)."""
        event_id = str(record[RecordField.EVENT_ID])
        try:
            _, recorded = publish_record(
                self._audit_log, self._publisher, record, now=self._clock(), replay=replay
            )
        except DownstreamUnavailableError as failure:
            self.tally.consecutive_failures += 1
            self.report(RepairStep(event_id, StepOutcome.FAILED, failure=failure))
            if self.tally.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                self.tally.stopped = True
                return False
            return True
        self.tally.consecutive_failures = 0
        self.report(
            RepairStep(event_id, StepOutcome.PUBLISHED if recorded else StepOutcome.UNRECORDED)
        )
        return True


def redrive(
    reader: AuditReader,
    audit_log: AuditLog,
    publisher: EventPublisher,
    *,
    received_before: datetime,
    limit: int | None = None,
    clock: Callable[[], datetime],
    on_step: StepListener = _ignore,
) -> RepairTally:
    """Publish every intact record still ``received`` before the cut-off, and mark it.

    Safe to run twice or concurrently: each record is re-read just before publishing and
    marked published only after a successful publish; a duplicate on the topic carries the
    same eventId for subscribers to dedupe.
    """
    run = _Run(audit_log, publisher, clock, on_step)
    for candidate in pending_records(reader, received_before=received_before, limit=limit):
        # Re-read: a concurrent redrive or P0's retry may have published it since the page
        # was fetched. (Not a lock: a race still yields a duplicate with the same eventId.)
        event_id = str(candidate[RecordField.EVENT_ID])
        current = reader.get(event_id)
        if (
            current is None
            or current.get(RecordField.PUBLISH_STATUS) != PublishStatus.RECEIVED
            or _released_after(current, received_before)
        ):
            run.report(RepairStep(event_id, StepOutcome.SKIPPED))
            continue
        refusal = _refusal(current)
        if refusal is not None:
            run.report(refusal)
            continue
        if not run.publish(current, replay=False):
            break
    return run.tally


def _released_after(record: AuditRecord, cutoff: datetime) -> bool:
    """A record an operator released after ``cutoff``: its release may be publishing it now.

    Its ``receivedAt`` is P0's first delivery, long before the release, so the minimum age
    that keeps a pass from racing an in-flight delivery is measured from the release instead.
    """
    released = record.get(RecordField.RELEASED_FROM)
    released_at = released.get("releasedAt") if isinstance(released, Mapping) else None
    return isinstance(released_at, datetime) and released_at > cutoff


def replay(
    reader: AuditReader,
    audit_log: AuditLog,
    publisher: EventPublisher,
    wanted: RecordFilter,
    *,
    clock: Callable[[], datetime],
    on_step: StepListener = _ignore,
) -> RepairTally:
    """Re-publish every intact matching record with ``replay=true``; publish state untouched."""
    run = _Run(audit_log, publisher, clock, on_step)
    for record in intact_records(query_records(reader, wanted), run.report):
        if not run.publish(record, replay=True):
            break
    return run.tally
