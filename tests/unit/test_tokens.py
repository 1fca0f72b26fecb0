"""Token verification: every way a token is refused, with its reason code."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import jwt
import pytest

from p0_receiver.core.errors import AuthenticationError, AuthFailure
from p0_receiver.core.keys import parse_public_keys
from p0_receiver.core.tokens import CURVE_ORDERS, TokenPolicy, TokenVerifier, token_fingerprint
from tests.support import (
    AUDIENCE,
    ISSUER,
    SUBJECT,
    claims,
    ecdsa_twin,
    hs256_with_public_key,
    keypair,
    later,
    padded,
    token,
    unsigned_token,
    with_dirty_trailing_bits,
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
    assert verified.fingerprint == token_fingerprint(raw, algorithm)
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


# --- The replay ledger's key names the signature event, not the string --------------------


def fingerprint_of(algorithm: str, raw: str) -> str:
    return verifier_for(pem_config(algorithm)).verify(f"Bearer {raw}").fingerprint


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_padded_signature_is_refused_as_malformed(algorithm: str) -> None:
    raw = token(keypair(algorithm))
    assert reason(verifier_for(pem_config(algorithm)), f"Bearer {padded(raw)}") == (
        AuthFailure.MALFORMED_TOKEN
    )


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["header", "payload", "signature"])
@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda s: s + "=", id="padding"),
        pytest.param(lambda s: s.replace("-", "+").replace("_", "/") + "+/", id="std-alphabet"),
        pytest.param(lambda s: s + "!", id="outside-alphabet"),
        pytest.param(lambda s: s[:2] + "\u00e9" + s[2:], id="non-ascii"),
    ],
)
def test_non_canonical_base64url_in_any_segment_is_malformed(segment: int, spoil: Any) -> None:
    parts = token().split(".")
    parts[segment] = spoil(parts[segment])
    assert reason(verifier_for(ES), "Bearer " + ".".join(parts)) == AuthFailure.MALFORMED_TOKEN


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "RS256"])
def test_non_zero_trailing_bits_are_malformed(algorithm: str) -> None:
    raw = token(keypair(algorithm))
    dirty = with_dirty_trailing_bits(raw)
    assert dirty != raw
    assert reason(verifier_for(pem_config(algorithm)), f"Bearer {dirty}") == (
        AuthFailure.MALFORMED_TOKEN
    )


@pytest.mark.parametrize("algorithm", ["ES256", "ES384", "ES512"])
def test_ecdsa_twin_verifies_and_has_the_same_fingerprint(algorithm: str) -> None:
    raw = token(keypair(algorithm))
    twin = ecdsa_twin(raw, CURVE_ORDERS[algorithm])
    assert twin != raw
    # The twin really is a second valid signature (this also proves the curve order constant).
    assert fingerprint_of(algorithm, twin) == fingerprint_of(algorithm, raw)


def test_randomized_signatures_of_identical_claims_are_different_tokens() -> None:
    first, second = (token(iat=1_900_000_000, exp=1_900_000_300) for _ in range(2))
    assert first.rpartition(".")[0] == second.rpartition(".")[0]  # same header and claims
    assert token_fingerprint(first, "ES256") != token_fingerprint(second, "ES256")


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA"])
def test_deterministic_signatures_of_identical_claims_are_one_token(algorithm: str) -> None:
    first, second = (
        token(keypair(algorithm), iat=1_900_000_000, exp=1_900_000_300) for _ in range(2)
    )
    assert first == second
    assert token_fingerprint(first, algorithm) == token_fingerprint(second, algorithm)


@pytest.mark.parametrize(
    ("algorithm", "deterministic"),
    [("RS256", True), ("EdDSA", True), ("ES256", False), ("ES384", False)],
)
def test_verified_token_knows_whether_its_algorithm_is_deterministic(
    algorithm: str, deterministic: bool
) -> None:
    verified = verifier_for(pem_config(algorithm)).verify(f"Bearer {token(keypair(algorithm))}")
    assert (verified.algorithm, verified.signs_deterministically) == (algorithm, deterministic)


# --- Claim types: NumericDates are integers ------------------------------------------------


# Built when the test runs, not when it is collected: a slow suite must not expire them.
NUMERIC_DATE_SPOILERS: dict[str, Callable[[], dict[str, Any]]] = {
    "iat-numeric-string": lambda: {"iat": str(later(0))},
    "exp-numeric-string": lambda: {"exp": str(later(300))},
    "nbf-numeric-string": lambda: {"nbf": str(later(-10))},
    "iat-fraction": lambda: {"iat": later(0) + 0.5},
    "iat-boolean": lambda: {"iat": True},
}


@pytest.mark.parametrize("case", sorted(NUMERIC_DATE_SPOILERS))
def test_numeric_dates_must_be_integers(case: str) -> None:
    overrides = NUMERIC_DATE_SPOILERS[case]()
    assert reason(verifier_for(ES), f"Bearer {token(**overrides)}") == AuthFailure.MALFORMED_TOKEN


# --- An operator's algorithm allow-list ----------------------------------------------------


def test_rsa_pem_key_verifies_pss_unless_the_allow_list_pins_pkcs1() -> None:
    rsa_key = keypair("RS256")
    pss = jwt.encode(claims(), rsa_key.private_pem, algorithm="PS256", headers={"kid": "k"})
    open_policy = verifier_for(pem_config("RS256"))
    assert open_policy.verify(f"Bearer {pss}").algorithm == "PS256"
    pinned = verifier_for(pem_config("RS256"), replace(POLICY, algorithms=frozenset({"RS256"})))
    assert reason(pinned, f"Bearer {pss}") == AuthFailure.DISALLOWED_ALGORITHM
    assert pinned.verify(f"Bearer {token(rsa_key)}").algorithm == "RS256"


def test_allow_list_that_leaves_no_usable_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="no configured key"):
        verifier_for(ES, replace(POLICY, algorithms=frozenset({"RS256"})))
