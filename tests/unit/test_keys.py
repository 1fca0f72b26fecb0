"""Key configuration: every accepted form, and every refusal names the variable."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from p0_receiver.core.errors import ConfigurationError
from p0_receiver.core.keys import parse_public_keys
from tests.support import keypair


def test_single_pem_key_pins_its_curve_algorithm() -> None:
    (key,) = parse_public_keys(keypair("ES256").public_pem.decode())
    assert key.algorithms == frozenset({"ES256"})
    assert key.kid is None


def test_rsa_pem_allows_rs_and_ps_family_only() -> None:
    (key,) = parse_public_keys(keypair("RS256").public_pem.decode())
    assert key.algorithms == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}


def test_pem_bundle_yields_every_key_for_rotation() -> None:
    bundle = keypair("ES256").public_pem + b"\n" + keypair("RS256").public_pem
    keys = parse_public_keys(bundle.decode())
    assert [sorted(k.algorithms)[0] for k in keys] == ["ES256", "PS256"]


def test_jwk_keeps_kid_and_declared_alg() -> None:
    jwk = keypair("ES384", kid="p0-2026").public_jwk()
    (key,) = parse_public_keys(json.dumps(jwk))
    assert (key.kid, key.algorithms) == ("p0-2026", frozenset({"ES384"}))


def test_jwks_with_two_keys() -> None:
    jwks = {"keys": [keypair("ES256", "a").public_jwk(), keypair("RS256", "b").public_jwk()]}
    keys = parse_public_keys(json.dumps(jwks))
    assert [(k.kid, sorted(k.algorithms)) for k in keys] == [("a", ["ES256"]), ("b", ["RS256"])]


def test_rsa_jwk_without_alg_gets_the_rsa_family() -> None:
    jwk = keypair("RS256").public_jwk()
    del jwk["alg"]
    (key,) = parse_public_keys(json.dumps(jwk))
    assert "PS256" in key.algorithms


def test_ed25519_and_certificate_forms() -> None:
    ed_pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p0")])
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(issued)
        .not_valid_after(issued + timedelta(days=365))
        .sign(private, hashes.SHA256())
    )
    text = ed_pem.decode() + certificate.public_bytes(serialization.Encoding.PEM).decode()
    keys = parse_public_keys(text)
    assert [k.algorithms for k in keys] == [frozenset({"EdDSA"}), frozenset({"ES256"})]


def _weak_rsa_pem() -> str:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505 (refusal under test)
    return weak.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(keypair("ES256").private_pem.decode(), "private key", id="private-pem"),
        pytest.param('{"kty":"oct","k":"c2VjcmV0"}', "symmetric", id="hmac-jwk"),
        pytest.param("not a key at all", "neither PEM nor valid JSON", id="garbage"),
        pytest.param('{"keys": []}', "non-empty", id="empty-jwks"),
        pytest.param('{"kty":"RSA","n":"x"}', "not a usable JWK", id="broken-jwk"),
        pytest.param(_weak_rsa_pem(), "at least 2048", id="rsa-1024"),
        pytest.param(
            json.dumps({**keypair("ES256").public_jwk(), "alg": "RS256"}),
            "not a usable JWK",
            id="alg-mismatch",
        ),
        pytest.param(
            json.dumps({**keypair("ES256").public_jwk(), "use": "enc"}), "not a signing", id="enc"
        ),
        pytest.param(
            json.dumps({"keys": [keypair("ES256").public_jwk(), keypair("ES256").public_jwk()]}),
            "same kid",
            id="duplicate-kid",
        ),
    ],
)
def test_refusals_name_the_variable_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_public_keys(text, variable="P0_PUBLIC_KEYS_FILE")
    assert caught.value.variable == "P0_PUBLIC_KEYS_FILE"
    assert problem in str(caught.value)


def test_private_jwk_is_refused() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private))
    with pytest.raises(ConfigurationError, match="private key material"):
        parse_public_keys(json.dumps(jwk))
