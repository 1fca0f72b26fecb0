"""RFC 7638 JWK thumbprints: one stable name per verification key, whatever form it came in.

A PEM block, a certificate and a JWK of the same key get the same thumbprint, so an audit
record, a log line and a metric can say which configured key verified a token.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

# RFC 7638 §3.2: the members a thumbprint is computed over, per key type (nothing optional).
REQUIRED_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),  # RFC 8037 §2
}


def public_jwk(key: object) -> dict[str, Any]:
    """The key's public JWK members, as pyjwt writes them."""
    if isinstance(key, rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return OKPAlgorithm.to_jwk(key, as_dict=True)
    raise ValueError(f"no JWK thumbprint for a {type(key).__name__}")


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """SHA-256 thumbprint (base64url, unpadded) of a public JWK's required members.

    RFC 7638's canonical form (required members only, names sorted, no whitespace, UTF-8) is
    what RFC 8785's canonicalisation writes for such an object of strings.
    """
    members = REQUIRED_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise ValueError(f"no JWK thumbprint for key type {jwk.get('kty')!r}")
    missing = [name for name in members if not isinstance(jwk.get(name), str)]
    if missing:
        raise ValueError(f"the JWK lacks {', '.join(missing)}")
    canonical = rfc8785.dumps({name: jwk[name] for name in members})
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def key_thumbprint(key: object) -> str:
    """The RFC 7638 thumbprint of a public key object."""
    return jwk_thumbprint(public_jwk(key))
