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
