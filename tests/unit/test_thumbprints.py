"""RFC 7638 thumbprints: the RFC's own vector, and one name per key whatever its form."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from p0_receiver.core.keys import parse_public_keys
from p0_receiver.core.thumbprints import jwk_thumbprint, key_thumbprint
from tests.support import keypair

# RFC 7638 §3.1.
RFC_7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJ"
        "ECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD"
        "W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4v"
        "MQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC_7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_the_rfc_7638_example() -> None:
    assert jwk_thumbprint(RFC_7638_JWK) == RFC_7638_THUMBPRINT
    # The key object pyjwt parses from that JWK gets the same thumbprint.
    assert key_thumbprint(jwt.PyJWK(RFC_7638_JWK).key) == RFC_7638_THUMBPRINT


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_a_key_has_one_thumbprint_whatever_its_form(algorithm: str) -> None:
    pair = keypair(algorithm, kid="k1")
    (from_pem,) = parse_public_keys(pair.public_pem.decode())
    (from_jwk,) = parse_public_keys(json.dumps(pair.public_jwk()))
    assert key_thumbprint(from_pem.key) == key_thumbprint(from_jwk.key)
    assert key_thumbprint(from_pem.key) == jwk_thumbprint(pair.public_jwk())


def test_different_keys_have_different_thumbprints() -> None:
    first = ed25519.Ed25519PrivateKey.generate().public_key()
    second = ed25519.Ed25519PrivateKey.generate().public_key()
    assert key_thumbprint(first) != key_thumbprint(second)


@pytest.mark.parametrize(
    ("jwk", "problem"),
    [
        ({"kty": "oct", "k": "c2VjcmV0"}, "key type 'oct'"),
        ({"kty": "EC", "crv": "P-256", "x": "AA"}, "lacks y"),
    ],
)
def test_what_has_no_thumbprint(jwk: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        jwk_thumbprint(jwk)
