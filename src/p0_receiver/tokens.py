"""Verification of P0's bearer JWT against pinned keys and a claim policy.

Every failure becomes one ``AuthenticationError`` with a reason code; no library exception
escapes and no token text is ever put into an error or a log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from p0_receiver.errors import AuthenticationError, AuthFailure
from p0_receiver.keys import PublicKey

REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
# A compact JWS from P0 is a few hundred bytes; anything huge is not a token we issued to parse.
_MAX_TOKEN_CHARS = 8192

_CLAIM_FAILURES: tuple[tuple[type[jwt.InvalidTokenError], AuthFailure], ...] = (
    (jwt.ExpiredSignatureError, AuthFailure.EXPIRED),
    (jwt.ImmatureSignatureError, AuthFailure.NOT_YET_VALID),
    (jwt.InvalidAudienceError, AuthFailure.WRONG_AUDIENCE),
    (jwt.InvalidIssuerError, AuthFailure.WRONG_ISSUER),
    (jwt.exceptions.InvalidSubjectError, AuthFailure.WRONG_SUBJECT),
    (jwt.MissingRequiredClaimError, AuthFailure.MISSING_CLAIM),
    (jwt.InvalidAlgorithmError, AuthFailure.DISALLOWED_ALGORITHM),
)


@dataclass(frozen=True)
class TokenPolicy:
    """What a token's claims must satisfy; ``None`` means "required, any value"."""

    issuer: str | None = None
    audience: str | None = None
    subject: str | None = None
    leeway_seconds: int = 30
    max_lifetime_seconds: int = 3600


@dataclass(frozen=True)
class VerifiedToken:
    """What the audit record keeps of an accepted token: never the token itself."""

    header: dict[str, Any]
    claims: dict[str, Any]
    fingerprint: str
    expires_at: datetime


def bearer_token(authorization: str | None) -> str:
    """Extract the compact JWT from an ``Authorization`` header value."""
    if authorization is None or not authorization.strip():
        raise AuthenticationError(AuthFailure.MISSING_TOKEN)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token or " " in token.strip():
        raise AuthenticationError(AuthFailure.MALFORMED_HEADER)
    token = token.strip()
    if len(token) > _MAX_TOKEN_CHARS or token.count(".") != 2:
        raise AuthenticationError(AuthFailure.MALFORMED_TOKEN)
    return token


def token_fingerprint(token: str) -> str:
    """A stable, non-reversible name for a token (the replay ledger's key)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class TokenVerifier:
    """Verifies tokens with configured keys only; built once per process."""

    def __init__(self, keys: Sequence[PublicKey], policy: TokenPolicy) -> None:
        if not keys:
            raise ValueError("at least one public key is required")
        self._keys = tuple(keys)
        self._policy = policy
        self._allowed_algorithms = frozenset().union(*(key.algorithms for key in keys))

    def verify(self, authorization: str | None) -> VerifiedToken:
        token = bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(AuthFailure.MALFORMED_TOKEN) from exc
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._allowed_algorithms:
            raise AuthenticationError(AuthFailure.DISALLOWED_ALGORITHM)

        candidates = self._candidates(header.get("kid"), algorithm)
        if not candidates:
            raise AuthenticationError(AuthFailure.UNKNOWN_KEY)
        for key in candidates:
            try:
                claims = self._decode(token, key)
            except jwt.InvalidSignatureError:
                continue  # rotation: the next configured key may be the signer
            return self._accept(token, header, claims)
        raise AuthenticationError(AuthFailure.BAD_SIGNATURE)

    def _candidates(self, kid: object, algorithm: str) -> list[PublicKey]:
        usable = [key for key in self._keys if algorithm in key.algorithms]
        if not isinstance(kid, str) or not kid:
            return usable
        named = [key for key in usable if key.kid == kid]
        # A kid we only hold as an unnamed PEM key is tried against those keys, never fetched.
        return named or [key for key in usable if key.kid is None]

    def _decode(self, token: str, key: PublicKey) -> dict[str, Any]:
        policy = self._policy
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=sorted(key.algorithms),
                audience=policy.audience,
                issuer=policy.issuer,
                subject=policy.subject,
                leeway=policy.leeway_seconds,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    # Without a configured audience the claim is still required, any value.
                    "verify_aud": policy.audience is not None,
                },
            )
        except jwt.InvalidSignatureError:
            raise
        except jwt.InvalidTokenError as exc:
            for error_type, reason in _CLAIM_FAILURES:
                if isinstance(exc, error_type):
                    raise AuthenticationError(reason) from exc
            raise AuthenticationError(AuthFailure.MALFORMED_TOKEN) from exc
        return claims

    def _accept(self, token: str, header: dict[str, Any], claims: dict[str, Any]) -> VerifiedToken:
        for name in ("iss", "sub"):
            if not isinstance(claims[name], str) or not claims[name]:
                raise AuthenticationError(AuthFailure.MISSING_CLAIM)
        lifetime = claims["exp"] - claims["iat"]
        if lifetime > self._policy.max_lifetime_seconds:
            raise AuthenticationError(AuthFailure.LIFETIME_TOO_LONG)
        return VerifiedToken(
            header=dict(header),
            claims=dict(claims),
            fingerprint=token_fingerprint(token),
            expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
        )
