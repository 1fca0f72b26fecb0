"""Helpers shared by the test tiers: dev keys, P0-style tokens, crafted bad tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import jwt

from p0_receiver.devtools.simulator import DevKeypair, generate_keypair

ISSUER = "https://p0.example/notifier"
AUDIENCE = "https://hooks.example.com/p0"
SUBJECT = "my-notifier-service"


@cache
def _cached_keypair(algorithm: str, kid: str) -> DevKeypair:
    return generate_keypair(algorithm, kid=kid)


def keypair(algorithm: str = "ES256", kid: str = "test-key-1") -> DevKeypair:
    """One keypair per (algorithm, kid) per test run: RSA generation is slow."""
    return _cached_keypair(algorithm, kid)


def now() -> datetime:
    return datetime.now(tz=UTC)


def claims(**overrides: Any) -> dict[str, Any]:
    issued = int(now().timestamp())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "iat": issued,
        "exp": issued + 300,
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def token(
    key: DevKeypair | None = None,
    *,
    headers: dict[str, Any] | None = None,
    **claim_overrides: Any,
) -> str:
    """A token signed like P0 signs (kid header); ``claim=None`` drops a claim."""
    key = key or keypair()
    return jwt.encode(
        claims(**claim_overrides),
        key.private_pem,
        algorithm=key.algorithm,
        headers={"kid": key.kid, **(headers or {})},
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_token(**claim_overrides: Any) -> str:
    """``alg: none``: what an attacker sends hoping the verifier trusts the header."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims(**claim_overrides)).encode())}."


def hs256_with_public_key(key: DevKeypair) -> str:
    """HS256 keyed with the public PEM: the classic algorithm-confusion forgery."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = _b64(json.dumps(claims()).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(key.public_pem, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def later(seconds: int) -> int:
    return int((now() + timedelta(seconds=seconds)).timestamp())


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def padded(raw_token: str) -> str:
    """The same token with ``=`` padding on its signature: pyjwt's decoder accepts it."""
    return raw_token + "=" * (-len(raw_token.rpartition(".")[2]) % 4 or 2)


def with_dirty_trailing_bits(raw_token: str) -> str:
    """The same signature bytes spelled with non-zero unused bits in the last character."""
    head, _, signature = raw_token.rpartition(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused_bits = {2: 4, 3: 2}[len(signature) % 4]
    last = alphabet.index(signature[-1])
    assert last % (1 << unused_bits) == 0, "a canonical last character has its unused bits clear"
    return f"{head}.{signature[:-1]}{alphabet[last | 1]}"


def ecdsa_twin(raw_token: str, curve_order: int) -> str:
    """(r, n - s): a second valid ECDSA signature of the same header.payload (malleability)."""
    head, _, encoded = raw_token.rpartition(".")
    signature = _unb64(encoded)
    half = len(signature) // 2
    s = int.from_bytes(signature[half:], "big")
    twin = signature[:half] + (curve_order - s).to_bytes(half, "big")
    return f"{head}.{_b64(twin)}"
