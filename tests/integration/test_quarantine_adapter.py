"""The Firestore quarantine on the real emulator: the per-token bound without a query, so that
refusals under different tokens never wait for each other, and every keep bounded in time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from p0_receiver.adapters.firestore import FirestoreQuarantine, firestore_client
from p0_receiver.core.quarantine import QuarantineReason, QuarantineStatus, RefusedBody
from p0_receiver.core.tokens import VerifiedToken
from tests.conftest import Stack

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TIMEOUT_SECONDS = 4.0


def _refused(token: int, n: int) -> RefusedBody:
    verified = VerifiedToken(
        header={"alg": "ES256"},
        claims={"sub": "p0"},
        fingerprint=f"{token:064x}",
        expires_at=NOW + timedelta(minutes=5),
        key_thumbprint="k" * 43,
        key_id=None,
    )
    body = f'{{"id":"n","name":"x","eventType":"t","data":{{"n":{token * 1000 + n}}}}}'.encode()
    return RefusedBody(body, verified, QuarantineReason.TOKEN_REUSED, {"firstEventId": "e"})


def _quarantine(stack: Stack) -> FirestoreQuarantine:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.emulator_env.items():
            patch.setenv(name, value)
        client = firestore_client(stack.project, "(default)")
    return FirestoreQuarantine(client, "p0_quarantine", TIMEOUT_SECONDS)


def test_refusals_under_different_tokens_do_not_block_each_other(stack: Stack) -> None:
    quarantine = _quarantine(stack)

    def keep(token: int) -> QuarantineStatus:
        receipt = quarantine.keep(_refused(token, 0), now=NOW, retention_days=7, max_per_token=3)
        return receipt.status

    # Eight at once, forty tokens: with a query in the transaction the emulator's locks made
    # them abort each other ("Transaction lock timeout") until the keeps failed; now each is
    # one short transaction over two documents of its own token, done within its budget.
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(keep, range(40)))
    assert statuses == [QuarantineStatus.STORED] * 40


def test_the_bound_per_token_holds_and_a_discard_frees_a_place(stack: Stack) -> None:
    quarantine = _quarantine(stack)
    statuses = [
        quarantine.keep(_refused(7, n), now=NOW, retention_days=7, max_per_token=2).status
        for n in range(3)
    ]
    assert statuses == [
        QuarantineStatus.STORED,
        QuarantineStatus.STORED,
        QuarantineStatus.TOKEN_LIMIT,
    ]
    repeat = quarantine.keep(_refused(7, 0), now=NOW, retention_days=7, max_per_token=2)
    assert repeat.status is QuarantineStatus.REPEATED  # a repeat is counted, never refused
    assert quarantine.discard(_refused(7, 0).quarantine_id)
    freed = quarantine.keep(_refused(7, 2), now=NOW, retention_days=7, max_per_token=2)
    assert freed.status is QuarantineStatus.STORED
    # Another token's bound is its own.
    other = quarantine.keep(_refused(8, 0), now=NOW, retention_days=7, max_per_token=2)
    assert other.status is QuarantineStatus.STORED


def test_entries_past_their_retention_do_not_count_against_the_bound(stack: Stack) -> None:
    quarantine = _quarantine(stack)
    for n in range(2):
        quarantine.keep(_refused(9, n), now=NOW, retention_days=1, max_per_token=2)
    # Two days on, both entries are past their expireAt (the TTL deletes them in its own time).
    later = quarantine.keep(
        _refused(9, 2), now=NOW + timedelta(days=2), retention_days=1, max_per_token=2
    )
    assert later.status is QuarantineStatus.STORED
