"""Token verification: every way a token is refused, with its reason code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from p0_receiver.errors import AuthenticationError, AuthFailure
from p0_receiver.keys import parse_public_keys
from p0_receiver.tokens import TokenPolicy, TokenVerifier, token_fingerprint
from tests.support import (
    AUDIENCE,
    ISSUER,
    SUBJECT,
    hs256_with_public_key,
    keypair,
    later,
    token,
    unsigned_token,
)

POLICY = TokenPolicy(
    issuer=ISSUER, audience=AUDIENCE, subject=SUBJECT, leeway_seconds=30, max_lifetime_seconds=3600
)


def verifier_for(config_text: str, policy: TokenPolicy = POLICY) -> TokenVerifier:
    return TokenVerifier(parse_public_keys(config_text), policy)


def pem_config(algorithm: str) -> str:
    return keypair(algorithm).public_pem.decode()


def jwk_config(algorithm: str) -> str:
    return json.dumps(keypair(algorithm).public_jwk())


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
@pytest.mark.parametrize("form", [pem_config, jwk_config], ids=["pem", "jwk"])
def test_accepts_p0_style_token_and_keeps_header_and_claims(algorithm: str, form: object) -> None:
    assert callable(form)
    verifier = verifier_for(form(algorithm))
    raw = token(keypair(algorithm))
    verified = verifier.verify(f"Bearer {raw}")
    assert verified.header == {"alg": algorithm, "kid": "test-key-1", "typ": "JWT"}
    assert (verified.claims["iss"], verified.claims["aud"], verified.claims["sub"]) == (
        ISSUER,
        AUDIENCE,
        SUBJECT,
    )
    assert verified.fingerprint == token_fingerprint(raw)
    assert raw not in repr(verified)
    assert int(verified.expires_at.timestamp()) == verified.claims["exp"]


def reason(verifier: TokenVerifier, authorization: str | None) -> AuthFailure:
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(authorization)
    return caught.value.reason


ES = pem_config("ES256")


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        pytest.param(None, AuthFailure.MISSING_TOKEN, id="no-header"),
        pytest.param("   ", AuthFailure.MISSING_TOKEN, id="blank-header"),
        pytest.param("Basic dXNlcjpwYXNz", AuthFailure.MALFORMED_HEADER, id="basic-scheme"),
        pytest.param("Bearer", AuthFailure.MALFORMED_HEADER, id="bearer-without-token"),
        pytest.param("Bearer a.b.c d", AuthFailure.MALFORMED_HEADER, id="two-tokens"),
        pytest.param("Bearer not-a-jwt", AuthFailure.MALFORMED_TOKEN, id="garbled"),
        pytest.param("Bearer %%%.%%%.%%%", AuthFailure.MALFORMED_TOKEN, id="bad-base64"),
        pytest.param("Bearer " + "a." * 5000 + "b", AuthFailure.MALFORMED_TOKEN, id="huge"),
    ],
)
def test_header_problems(authorization: str | None, expected: AuthFailure) -> None:
    assert reason(verifier_for(ES), authorization) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"exp": later(-120)}, AuthFailure.EXPIRED, id="expired"),
        pytest.param(
            {"iat": later(600), "exp": later(900)}, AuthFailure.NOT_YET_VALID, id="issued-in-future"
        ),
        pytest.param({"nbf": later(600)}, AuthFailure.NOT_YET_VALID, id="nbf-in-future"),
        pytest.param({"iss": "https://evil.example"}, AuthFailure.WRONG_ISSUER, id="issuer"),
        pytest.param({"aud": "https://other.example"}, AuthFailure.WRONG_AUDIENCE, id="audience"),
        pytest.param({"sub": "other-notifier"}, AuthFailure.WRONG_SUBJECT, id="subject"),
        pytest.param({"exp": later(3600 * 5)}, AuthFailure.LIFETIME_TOO_LONG, id="lifetime"),
        pytest.param({"iat": "yesterday"}, AuthFailure.MALFORMED_TOKEN, id="iat-not-a-number"),
    ]
    + [
        pytest.param({claim: None}, AuthFailure.MISSING_CLAIM, id=f"missing-{claim}")
        for claim in ("exp", "iat", "iss", "aud", "sub")
    ],
)
def test_claim_problems(overrides: dict[str, Any], expected: AuthFailure) -> None:
    assert reason(verifier_for(ES), f"Bearer {token(**overrides)}") == expected


def test_leeway_tolerates_small_clock_skew() -> None:
    verified = verifier_for(ES).verify(f"Bearer {token(exp=later(-10), iat=later(-200))}")
    assert verified.claims["sub"] == SUBJECT


def test_unconfigured_claims_are_still_required_but_any_value_passes() -> None:
    open_policy = TokenPolicy(leeway_seconds=30, max_lifetime_seconds=3600)
    verifier = verifier_for(ES, open_policy)
    assert verifier.verify(f"Bearer {token(aud='anything', iss='x')}").claims["aud"] == "anything"
    assert reason(verifier, f"Bearer {token(aud=None)}") == AuthFailure.MISSING_CLAIM


def test_empty_issuer_counts_as_missing() -> None:
    open_policy = TokenPolicy(leeway_seconds=30, max_lifetime_seconds=3600)
    assert reason(verifier_for(ES, open_policy), f"Bearer {token(iss='')}") in {
        AuthFailure.MISSING_CLAIM
    }


def test_token_from_another_key_with_same_kid_is_a_bad_signature() -> None:
    impostor = keypair("ES256", kid="impostor")
    forged = token(impostor, headers={"kid": "test-key-1"})
    assert (
        reason(verifier_for(jwk_config("ES256")), f"Bearer {forged}") == AuthFailure.BAD_SIGNATURE
    )


def test_unknown_kid_against_named_keys_is_unknown_key() -> None:
    forged = token(keypair("ES256", kid="somebody-else"))
    assert reason(verifier_for(jwk_config("ES256")), f"Bearer {forged}") == AuthFailure.UNKNOWN_KEY


def test_alg_none_is_refused() -> None:
    assert reason(verifier_for(ES), f"Bearer {unsigned_token()}") == (
        AuthFailure.DISALLOWED_ALGORITHM
    )


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_hs256_signed_with_the_public_key_is_refused(algorithm: str) -> None:
    forged = hs256_with_public_key(keypair(algorithm))
    assert reason(verifier_for(pem_config(algorithm)), f"Bearer {forged}") == (
        AuthFailure.DISALLOWED_ALGORITHM
    )


def test_algorithm_of_another_key_type_is_refused() -> None:
    rsa_token = token(keypair("RS256"))
    assert reason(verifier_for(ES), f"Bearer {rsa_token}") == AuthFailure.DISALLOWED_ALGORITHM


def test_rotation_second_configured_key_verifies() -> None:
    old, new = keypair("ES256", kid="old"), keypair("ES256", kid="new")
    bundle = (old.public_pem + new.public_pem).decode()  # PEM keys carry no kid
    verified = verifier_for(bundle).verify(f"Bearer {token(new)}")
    assert verified.header["kid"] == "new"


def test_kid_selects_among_jwks_keys() -> None:
    jwks = {"keys": [keypair("ES256", "a").public_jwk(), keypair("RS256", "b").public_jwk()]}
    verifier = verifier_for(json.dumps(jwks))
    assert verifier.verify(f"Bearer {token(keypair('RS256', 'b'))}").header["kid"] == "b"
