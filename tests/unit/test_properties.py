"""Properties of the pure core, over generated inputs: the event id, parsing, the fingerprint.

``P0_PROPERTY_SCALE`` multiplies every example count (``make fuzz`` runs them 20 times longer).
"""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import assume, given, reject, settings
from hypothesis import strategies as st

from p0_receiver.core.errors import AuthenticationError, AuthFailure, ReceiverError
from p0_receiver.core.events import event_id_for, parse_notification
from p0_receiver.core.keys import parse_public_keys
from p0_receiver.core.record import build_audit_record, message_attributes
from p0_receiver.core.tokens import CURVE_ORDERS, TokenPolicy, TokenVerifier, token_fingerprint
from p0_receiver.settings import Settings
from tests.support import AUDIENCE, ISSUER, SUBJECT, ecdsa_twin, keypair, token

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MAX_BODY_BYTES: int = Settings.model_fields["max_body_bytes"].default
POLICY = TokenPolicy(issuer=ISSUER, audience=AUDIENCE, subject=SUBJECT)
IJSON = 2**53 - 1
SCALE = max(1, int(os.environ.get("P0_PROPERTY_SCALE", "1")))

# Names the receiver reads from ``data``: drawn often so that lifting and p0Times get exercised.
P0_NAMES = (
    "id", "requestId", "type", "access", "status", "reason", "requestor", "principal",
    "permission", "name", "description", "approver", "email", "approvalSource",
    "approvalTimestamp", "approvalDetails", "approvedTimestamp", "startsAt", "endsAt",
    "createdAt", "requestedTimestamp", "lastUpdatedTimestamp", "grantTimestamp", "expiryAt",
)  # fmt: skip
EVENT_TYPES = ("preapproval-created", "request-created", "request-approved", "access-reviewed")

# Keys and values may hold lone surrogates: legal JSON text that I-JSON forbids (a 422).
keys = (
    st.sampled_from(P0_NAMES)
    | st.text(max_size=12)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=4)
)
texts = st.text(max_size=16) | st.text(st.characters(codec=None, exclude_categories=()), max_size=4)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-IJSON, IJSON)
    | st.integers()  # beyond I-JSON: refused with a 422
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=12,
)
json_objects = st.dictionaries(keys, json_values, max_size=8)
shallow_values = (
    scalars | st.lists(scalars, max_size=3) | st.dictionaries(keys, scalars, max_size=3)
)

texts_1 = st.text(min_size=1, max_size=24)
millis = st.integers(0, 4_102_444_800_000)
preapproval_fields = {
    "id": texts_1,
    "type": texts_1,
    "access": texts_1,
    "permission": st.fixed_dictionaries({"name": texts_1, "description": st.text(max_size=24)}),
    "startsAt": millis,
    "endsAt": millis,
    "createdAt": millis,
    "principal": texts_1,
    "approver": st.fixed_dictionaries(
        {
            "id": texts_1,
            "name": st.text(max_size=24),
            "email": texts_1,
            "approvalTimestamp": millis,
            "approvalSource": texts_1,
        }
    ),
    "reason": st.text(max_size=64),
}
event_data = (
    st.fixed_dictionaries(preapproval_fields)  # valid: the full model
    | st.fixed_dictionaries({}, optional=preapproval_fields)  # fields missing
    | st.fixed_dictionaries({}, optional=dict.fromkeys(P0_NAMES, shallow_values))  # wrong types
    | json_objects
)
envelopes = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=16).filter(lambda text: not text.isspace()),
        "name": st.text(max_size=16),
        "eventType": st.sampled_from(EVENT_TYPES) | st.text(min_size=1, max_size=16),
        "data": event_data,
    },
    optional={"extra": json_values},
)
documents = envelopes | json_objects  # and objects that are no envelope at all


def _verified_token() -> Any:
    verifier = TokenVerifier(parse_public_keys(keypair().public_pem.decode()), POLICY)
    return verifier.verify(f"Bearer {token()}")


VERIFIED = _verified_token()


def _encode(value: Any, rnd: random.Random) -> str:
    """The same JSON value, spelled with random whitespace, key order and string escapes."""

    def space() -> str:
        return rnd.choice(["", " ", "\n", "\t", "\r\n  "])

    if isinstance(value, dict):
        members = list(value.items())
        rnd.shuffle(members)
        inner = ",".join(
            f"{space()}{_encode(key, rnd)}{space()}:{space()}{_encode(item, rnd)}{space()}"
            for key, item in members
        )
        return "{" + inner + space() + "}"
    if isinstance(value, list):
        return "[" + ",".join(space() + _encode(item, rnd) + space() for item in value) + "]"
    if isinstance(value, str):
        # A lone surrogate has no UTF-8 spelling: only its \uXXXX escape can carry it.
        return json.dumps(value, ensure_ascii=rnd.random() < 0.5 or _has_lone_surrogate(value))
    return json.dumps(value)


def _has_lone_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)


@given(envelopes, st.randoms(use_true_random=False))
@settings(max_examples=100 * SCALE, deadline=None)
def test_event_id_ignores_whitespace_key_order_and_escapes(
    document: dict[str, Any], rnd: random.Random
) -> None:
    compact_text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    if _has_lone_surrogate(compact_text):
        compact_text = json.dumps(document, separators=(",", ":"))
    compact = compact_text.encode()
    respelled = _encode(document, rnd).encode()
    try:
        expected = parse_notification(compact).event_id
    except ReceiverError:
        reject()  # a refused body has no id to compare
    assert parse_notification(respelled).event_id == expected == event_id_for(document)


@given(documents, st.booleans())
@settings(max_examples=300 * SCALE, deadline=None)
def test_parse_record_attributes_raise_only_our_400_and_422(
    document: dict[str, Any], strict: bool
) -> None:
    raw = json.dumps(document).encode()  # ensure_ascii: lone surrogates travel as \uXXXX
    assume(len(raw) <= MAX_BODY_BYTES)
    refused_with: int | None = None
    try:
        notification = parse_notification(raw, reject_unknown_types=strict)
    except ReceiverError as refusal:
        refused_with = refusal.status
    if refused_with is not None:
        assert refused_with in (400, 422)
        return
    record = build_audit_record(notification, VERIFIED, received_at=NOW, retention_days=400)
    attributes = message_attributes(record)
    assert attributes["eventId"] == notification.event_id
    assert attributes["eventType"] == document["eventType"]
    assert all(len(value.encode()) <= 1024 for value in attributes.values())


def test_lone_surrogate_in_a_key_is_refused_as_a_client_error() -> None:
    raw = b'{"id":"n1","name":"N","eventType":"access-reviewed","data":{"\\udc00":1}}'
    with pytest.raises(ReceiverError) as refusal:
        parse_notification(raw)
    assert refusal.value.status in (400, 422)


ECDSA = sorted(CURVE_ORDERS)
SEGMENT_SPELLINGS = ("canonical", "padded", "standard-alphabet", "dirty-bits")


def _respell(segment: str, how: str) -> str:
    """Another spelling of the same bytes (or the segment itself when none exists)."""
    if how == "padded" and len(segment) % 4:
        return segment + "=" * (-len(segment) % 4)
    if how == "standard-alphabet" and ("-" in segment or "_" in segment):
        return segment.replace("-", "+").replace("_", "/")
    if how == "dirty-bits" and len(segment) % 4 in (2, 3):
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        last = alphabet.index(segment[-1])
        return segment[:-1] + alphabet[last | 1]
    return segment


@given(
    algorithm=st.sampled_from([*ECDSA, "RS256", "EdDSA"]),
    extra_claims=st.dictionaries(st.sampled_from(["jti", "scope", "n"]), st.text(), max_size=2),
    twin=st.booleans(),
    spellings=st.tuples(*[st.sampled_from(SEGMENT_SPELLINGS)] * 3),
)
@settings(max_examples=150 * SCALE, deadline=None)
def test_every_accepted_spelling_of_a_token_has_its_fingerprint(
    algorithm: str, extra_claims: dict[str, Any], twin: bool, spellings: tuple[str, ...]
) -> None:
    key = keypair(algorithm)
    original = token(key, **extra_claims)
    verifier = TokenVerifier(parse_public_keys(key.public_pem.decode()), POLICY)
    fingerprint = verifier.verify(f"Bearer {original}").fingerprint
    assert fingerprint == token_fingerprint(original, algorithm)

    variant = original
    if twin and algorithm in ECDSA:
        variant = ecdsa_twin(original, CURVE_ORDERS[algorithm])
    respelled = ".".join(
        _respell(segment, how) for segment, how in zip(variant.split("."), spellings, strict=True)
    )
    try:
        outcome: str | AuthFailure = verifier.verify(f"Bearer {respelled}").fingerprint
    except AuthenticationError as refusal:
        outcome = refusal.reason
    if respelled == variant:
        assert outcome == fingerprint  # the twin included: one signature event, one key
    else:
        # Another spelling of the same bytes is never accepted: refused as malformed.
        assert outcome is AuthFailure.MALFORMED_TOKEN
