"""Quarantine: authentic bodies the receiver refuses are kept, not lost. Pure; time passed in.

A body that passed authentication but is refused (P0 changed a documented shape, an unknown
type in strict mode, a token reused with another body, a record Firestore will not store) is
answered with the 4xx P0's contract needs and kept here, byte for byte, for an operator to
inspect and release. Entries are keyed by the body's SHA-256 (the same body twice is one entry)
and bounded per token fingerprint, so a captured token cannot fill the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from p0_receiver.core.tokens import VerifiedToken


class QuarantineReason(StrEnum):
    SCHEMA_VIOLATION = "schema_violation"  # a known type whose shape P0 changed (422)
    UNKNOWN_TYPE = "unknown_type"  # strict mode refused an unknown event type (422)
    TOKEN_REUSED = "token_reused"  # a token already used with another body (401)
    UNSTORABLE = "unstorable"  # Firestore refused the record for good (422)


class QuarantineStatus(StrEnum):
    """What the quarantine did with one refused body (logged; never changes the answer)."""

    STORED = "stored"  # a new entry
    REPEATED = "repeated"  # the same body was already held: its count went up
    TOKEN_LIMIT = "token_limit"  # the token's entries are at QUARANTINE_MAX_PER_TOKEN: not kept
    FAILED = "failed"  # Firestore did not answer: not kept (the 4xx stands)


class QuarantineField:
    """Names of a quarantine entry's fields (Firestore document keys): a public contract."""

    QUARANTINE_ID: Final = "quarantineId"
    REASON: Final = "reason"
    DETAILS: Final = "details"
    BODY: Final = "body"
    BODY_SHA256: Final = "bodySha256"
    BODY_BYTES: Final = "bodyBytes"
    TOKEN: Final = "token"
    TOKEN_FINGERPRINT: Final = "tokenFingerprint"
    FIRST_RECEIVED_AT: Final = "firstReceivedAt"
    LAST_RECEIVED_AT: Final = "lastReceivedAt"
    COUNT: Final = "count"
    EXPIRE_AT: Final = "expireAt"
    # Set by an operator's release: when, and the audit record the body became.
    RELEASED_AT: Final = "releasedAt"
    RELEASED_EVENT_ID: Final = "releasedEventId"


# The per-token bound's documents: one per token fingerprint, in a collection beside the
# entries, holding the ids of that token's entries and when each expires. The bound is counted
# from it inside the keep's transaction, so no query runs there (a query in a transaction
# locks far more than one token's documents).
TOKEN_BOUND_SUFFIX: Final = "_per_token"
TOKEN_BOUND_HELD: Final = "held"  # {quarantineId: expireAt}
TOKEN_BOUND_EXPIRE_AT: Final = "expireAt"  # the latest of them: the TTL field


def token_bound_collection(quarantine_collection: str) -> str:
    """Where the per-token bound of ``quarantine_collection`` is kept."""
    return quarantine_collection + TOKEN_BOUND_SUFFIX


def entries_held(bound: Mapping[str, Any] | None, *, now: datetime) -> dict[str, datetime]:
    """The entries a token still holds at ``now``: those past their expiry no longer count,
    whether or not the TTL has deleted them yet."""
    held = (bound or {}).get(TOKEN_BOUND_HELD)
    if not isinstance(held, Mapping):
        return {}
    return {
        str(quarantine_id): expires
        for quarantine_id, expires in held.items()
        if isinstance(expires, datetime) and expires > now
    }


@dataclass(frozen=True)
class QuarantineReceipt:
    quarantine_id: str
    reason: QuarantineReason
    status: QuarantineStatus


@dataclass(frozen=True)
class RefusedBody:
    """An authentic body and why it was refused; ``details`` carries no body values."""

    body: bytes
    token: VerifiedToken
    reason: QuarantineReason
    details: Mapping[str, Any]

    @property
    def quarantine_id(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def quarantine_entry(refused: RefusedBody, *, now: datetime, retention_days: int) -> dict[str, Any]:
    """The Firestore document for a body quarantined for the first time."""
    token = refused.token
    return {
        QuarantineField.QUARANTINE_ID: refused.quarantine_id,
        QuarantineField.REASON: str(refused.reason),
        QuarantineField.DETAILS: dict(refused.details),
        QuarantineField.BODY: refused.body,
        QuarantineField.BODY_SHA256: refused.quarantine_id,
        QuarantineField.BODY_BYTES: len(refused.body),
        # Header and claims as JSON text: an entry must store even when a record with the same
        # claims as maps was refused (too deep, a name too long): that is one reason to be here.
        QuarantineField.TOKEN: {
            "header": json.dumps(token.header, sort_keys=True),
            "claims": json.dumps(token.claims, sort_keys=True),
            "fingerprint": token.fingerprint,
        },
        QuarantineField.TOKEN_FINGERPRINT: token.fingerprint,
        QuarantineField.FIRST_RECEIVED_AT: now,
        QuarantineField.LAST_RECEIVED_AT: now,
        QuarantineField.COUNT: 1,
        QuarantineField.EXPIRE_AT: now + timedelta(days=retention_days),
    }
