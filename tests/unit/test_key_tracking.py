"""Which key verified a token: its RFC 7638 thumbprint and kid on the verified token, the audit
record and the request's log line, across a rotation with two configured keys."""

from __future__ import annotations

import json
import logging

import pytest

from p0_receiver.adapters.logs import LOGGER_NAME
from p0_receiver.core.keys import parse_public_keys
from p0_receiver.core.thumbprints import jwk_thumbprint
from p0_receiver.core.tokens import TokenPolicy, TokenVerifier
from p0_receiver.devtools.samples import PREAPPROVAL_CREATED, SAMPLES
from p0_receiver.devtools.simulator import DevKeypair
from tests.support import AUDIENCE, ISSUER, SUBJECT, keypair, token
from tests.unit.test_http import Edge, log_lines

OLD = keypair("ES256", kid="p0-2025")
NEW = keypair("EdDSA", kid="p0-2026")
POLICY = TokenPolicy(issuer=ISSUER, audience=AUDIENCE, subject=SUBJECT)


def thumbprint(pair: DevKeypair) -> str:
    return jwk_thumbprint(pair.public_jwk())


def test_a_jwks_names_the_key_and_its_kid() -> None:
    jwks = json.dumps({"keys": [OLD.public_jwk(), NEW.public_jwk()]})
    verifier = TokenVerifier(parse_public_keys(jwks), POLICY)
    old = verifier.verify(f"Bearer {token(OLD)}")
    new = verifier.verify(f"Bearer {token(NEW)}")
    assert (old.key_thumbprint, old.key_id) == (thumbprint(OLD), "p0-2025")
    assert (new.key_thumbprint, new.key_id) == (thumbprint(NEW), "p0-2026")


def test_pem_keys_have_no_kid_but_the_same_thumbprint_as_their_jwk() -> None:
    pems = OLD.public_pem.decode() + NEW.public_pem.decode()
    verifier = TokenVerifier(parse_public_keys(pems), POLICY)
    # The token's kid header selects nothing among unnamed PEM keys: each is tried.
    verified = verifier.verify(f"Bearer {token(NEW)}")
    assert (verified.key_thumbprint, verified.key_id) == (thumbprint(NEW), None)
    assert verified.header["kid"] == "p0-2026"  # still on the record, in token.header


def test_the_record_and_the_log_line_say_which_key_verified(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jwks = json.dumps({"keys": [OLD.public_jwk(), NEW.public_jwk()]})
    edge = Edge(P0_PUBLIC_KEYS=jwks)
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        edge.post(PREAPPROVAL_CREATED, authorization=f"Bearer {token(OLD)}")
        edge.post(SAMPLES["request-approved"], authorization=f"Bearer {token(NEW, jti='1')}")
        # A duplicate's line names the key of its own token.
        edge.post(PREAPPROVAL_CREATED, authorization=f"Bearer {token(NEW, jti='2')}")
    keys = {
        record["eventType"]: (record["keyThumbprint"], record["keyId"])
        for record in edge.audit.records.values()
    }
    assert keys == {
        "preapproval-created": (thumbprint(OLD), "p0-2025"),
        "request-approved": (thumbprint(NEW), "p0-2026"),
    }
    lines = [
        (e["outcome"], e["keyThumbprint"], e["keyId"])
        for e in log_lines(caplog)
        if e["message"] == "p0_delivery"
    ]
    assert lines == [
        ("accepted", thumbprint(OLD), "p0-2025"),
        ("accepted", thumbprint(NEW), "p0-2026"),
        ("duplicate", thumbprint(NEW), "p0-2026"),
    ]


def test_a_token_no_key_verified_names_no_key(caplog: pytest.LogCaptureFixture) -> None:
    edge = Edge()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        edge.post(authorization=f"Bearer {token(NEW)}")
    (entry,) = log_lines(caplog)
    assert entry["outcome"] == "rejected"
    assert "keyThumbprint" not in entry
