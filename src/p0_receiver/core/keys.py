"""P0's public keys: parsed once from configuration into key objects with pinned algorithms.

Accepted forms: one or more PEM blocks (public keys or certificates), a JWK, or a JWKS. The
algorithms a key may verify are fixed by its type (never by a token), so ``none``, HS* and
algorithm-confusion tokens cannot verify against any configured key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jwt
import pem
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from p0_receiver.core.errors import ConfigurationError
from p0_receiver.core.thumbprints import key_thumbprint

type VerificationKeyObject = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class PublicKey:
    """One configured verification key and the only algorithms it may verify."""

    key: VerificationKeyObject
    algorithms: frozenset[str]
    kid: str | None = None
    # RFC 7638 thumbprint: which key verified a token, whatever form it was configured in.
    thumbprint: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "thumbprint", key_thumbprint(self.key))


def _algorithms_for(key: object, source: str) -> frozenset[str]:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"{source}: RSA key of {key.key_size} bits; at least 2048 required")
        return _RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = _EC_ALGORITHMS.get(key.curve.name)
        if algorithm is None:
            raise ValueError(f"{source}: unsupported elliptic curve {key.curve.name}")
        return frozenset({algorithm})
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    raise ValueError(f"{source}: unsupported key type {type(key).__name__}")


def _from_pem(text: str) -> list[PublicKey]:
    keys: list[PublicKey] = []
    for index, block in enumerate(pem.parse(text.encode("utf-8")), start=1):
        source = f"PEM block {index}"
        if isinstance(block, pem.PrivateKey):
            raise ValueError(f"{source} is a private key; configure only P0's public key")
        if isinstance(block, pem.Certificate):
            key: object = x509.load_pem_x509_certificate(block.as_bytes()).public_key()
        elif isinstance(block, pem.PublicKey):
            key = load_pem_public_key(block.as_bytes())
        else:
            raise ValueError(f"{source} is neither a public key nor a certificate")
        keys.append(PublicKey(key=key, algorithms=_algorithms_for(key, source)))  # type: ignore[arg-type]
    if not keys:
        raise ValueError("no PEM public key found")
    return keys


def _from_jwk(jwk: Any, source: str) -> PublicKey:
    if not isinstance(jwk, dict):
        raise ValueError(f"{source} is not a JSON object")
    if jwk.get("kty") == "oct":
        raise ValueError(f"{source} is a symmetric key; P0 signs with an asymmetric key")
    if "d" in jwk or "p" in jwk:
        raise ValueError(f"{source} contains private key material; configure only the public key")
    if jwk.get("use") not in (None, "sig"):
        raise ValueError(f"{source} is not a signing key (use={jwk.get('use')!r})")
    try:
        parsed = jwt.PyJWK(jwk)
    except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
        raise ValueError(f"{source} is not a usable JWK ({type(exc).__name__})") from exc
    algorithms = _algorithms_for(parsed.key, source)
    declared = jwk.get("alg")
    if declared is not None:
        if declared not in algorithms:
            raise ValueError(f"{source} declares alg {declared!r}, which its key type cannot use")
        algorithms = frozenset({declared})
    kid = jwk.get("kid")
    return PublicKey(key=parsed.key, algorithms=algorithms, kid=str(kid) if kid else None)


def _from_json(text: str) -> list[PublicKey]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError("is neither PEM nor valid JSON (JWK or JWKS)") from exc
    if isinstance(document, dict) and "keys" in document:
        entries = document["keys"]
        if not isinstance(entries, list) or not entries:
            raise ValueError("JWKS 'keys' must be a non-empty list")
        return [_from_jwk(entry, f"JWKS key {i}") for i, entry in enumerate(entries, start=1)]
    return [_from_jwk(document, "JWK")]


def parse_public_keys(text: str, variable: str = "P0_PUBLIC_KEYS") -> tuple[PublicKey, ...]:
    """Parse configured key material; a ConfigurationError names ``variable`` and the problem."""
    stripped = text.strip()
    try:
        keys = _from_pem(stripped) if stripped.startswith("-----BEGIN") else _from_json(stripped)
    except ValueError as exc:
        raise ConfigurationError(variable, str(exc)) from exc
    kids = [key.kid for key in keys if key.kid is not None]
    if len(kids) != len(set(kids)):
        raise ConfigurationError(variable, "two keys share the same kid")
    return tuple(keys)


def usable_algorithms(
    keys: tuple[PublicKey, ...], allowed: frozenset[str] | None
) -> tuple[frozenset[str], ...]:
    """Each key's algorithms narrowed by the P0_JWT_ALGORITHMS allow-list (``None``: all).

    A key left with none stops the cold start: it could never verify a token.
    """
    if allowed is None:
        return tuple(key.algorithms for key in keys)
    usable = tuple(key.algorithms & allowed for key in keys)
    for index, (key, algorithms) in enumerate(zip(keys, usable, strict=True), start=1):
        if not algorithms:
            raise ConfigurationError(
                "P0_JWT_ALGORITHMS",
                f"key {index} can verify only {sorted(key.algorithms)}; none is allowed",
            )
    return usable
