"""Verification of P0's bearer JWT against pinned keys and a claim policy.

Every failure becomes one ``AuthenticationError`` with a reason code; no library exception
escapes and no token text is ever put into an error or a log. The token's fingerprint names
its *signature event* (signing input plus canonical signature bytes), so a re-encoded copy of
a captured token is recognised as the same token by the replay ledger.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from p0_receiver.core.errors import AuthenticationError, AuthFailure
from p0_receiver.core.keys import PublicKey

REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
# A compact JWS from P0 is a few hundred bytes; anything huge is not a token we issued to parse.
_MAX_TOKEN_CHARS = 8192
# Claims RFC 7519 defines as NumericDate; pyjwt would accept numeric strings for them.
_NUMERIC_DATE_CLAIMS = ("exp", "iat", "nbf")
# Orders n of the ECDSA curves (SEC 2). (r, s) and (r, n - s) both verify for the same
# message, so the fingerprint keeps the low-S form; tests prove each constant with a real twin.
CURVE_ORDERS = {
    "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "ES384": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    "ES512": int(
        "01FF" + "F" * 63 + "A51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
        16,
    ),
}
# Algorithms whose signature is a function of key and message alone: the same claims signed in
# the same second give byte-identical tokens (RFC 8017 PKCS#1 v1.5, RFC 8032 EdDSA).
DETERMINISTIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "EdDSA"})

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
    # An operator's allow-list (P0_JWT_ALGORITHMS); ``None`` means every algorithm of the key type.
    algorithms: frozenset[str] | None = None


@dataclass(frozen=True)
class VerifiedToken:
    """What the audit record keeps of an accepted token: never the token itself."""

    header: dict[str, Any]
    claims: dict[str, Any]
    fingerprint: str
    expires_at: datetime
    # The configured key whose signature check passed: its RFC 7638 thumbprint and its kid
    # (None for a key configured without one, e.g. a PEM block).
    key_thumbprint: str
    key_id: str | None

    @property
    def algorithm(self) -> str:
        return str(self.header["alg"])

    @property
    def issued_at(self) -> datetime:
        """``iat`` as a time (an integer NumericDate: checked at verification)."""
        return datetime.fromtimestamp(self.claims["iat"], tz=UTC)

    @property
    def signs_deterministically(self) -> bool:
        """Whether the same claims signed in the same second give the very same token."""
        return self.algorithm in DETERMINISTIC_ALGORITHMS


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
    for segment in token.split("."):
        if _canonical_base64url(segment) is None:
            raise AuthenticationError(AuthFailure.MALFORMED_TOKEN)
    return token


def _canonical_base64url(segment: str) -> bytes | None:
    """Decode unpadded base64url (RFC 7515 §2); ``None`` unless ``segment`` is its only spelling.

    Padding, characters outside the alphabet and non-zero trailing bits all decode to the same
    bytes as some other string, which would give one signed token several fingerprints.
    """
    if not segment.isascii():
        return None
    try:
        decoded = base64.b64decode(
            segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True
        )
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != segment:
        return None
    return decoded


def _canonical_signature(algorithm: str, signature: bytes) -> bytes:
    order = CURVE_ORDERS.get(algorithm)
    if order is None:
        return signature
    half = len(signature) // 2
    r, s = signature[:half], int.from_bytes(signature[half:], "big")
    return r + min(s, order - s).to_bytes(half, "big")


def token_fingerprint(token: str, algorithm: str) -> str:
    """The replay ledger's key: SHA-256 over the signing input and the canonical signature.

    Two encodings of one signature (ECDSA's ``(r, n - s)`` twin) fingerprint alike; two
    signatures of the same claims by a randomized algorithm (ECDSA, PSS) do not.
    """
    signing_input, _, encoded_signature = token.rpartition(".")
    signature = _canonical_base64url(encoded_signature)
    if signature is None:
        raise AuthenticationError(AuthFailure.MALFORMED_TOKEN)
    digest = hashlib.sha256(signing_input.encode("ascii"))
    digest.update(b".")
    digest.update(_canonical_signature(algorithm, signature))
    return digest.hexdigest()


class TokenVerifier:
    """Verifies tokens with configured keys only; built once per process."""

    def __init__(self, keys: Sequence[PublicKey], policy: TokenPolicy) -> None:
        if not keys:
            raise ValueError("at least one public key is required")
        self._keys = tuple(keys)
        self._policy = policy
        self._allowed_algorithms = frozenset().union(*(key.algorithms for key in keys))
        if policy.algorithms is not None:
            self._allowed_algorithms &= policy.algorithms
        if not self._allowed_algorithms:
            raise ValueError("no configured key can verify any allowed algorithm")

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
            return self._accept(token, header, claims, key)
        raise AuthenticationError(AuthFailure.BAD_SIGNATURE)

    @property
    def algorithms(self) -> frozenset[str]:
        """The algorithms a token may use: the keys' types narrowed by the policy."""
        return self._allowed_algorithms

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
                algorithms=sorted(key.algorithms & self._allowed_algorithms),
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

    def _accept(
        self, token: str, header: dict[str, Any], claims: dict[str, Any], key: PublicKey
    ) -> VerifiedToken:
        for name in ("iss", "sub"):
            if not isinstance(claims[name], str) or not claims[name]:
                raise AuthenticationError(AuthFailure.MISSING_CLAIM)
        for name in _NUMERIC_DATE_CLAIMS:
            value = claims.get(name)
            # Integers only: pyjwt lets "1767225600" through, and the arithmetic below would not.
            if name in claims and (not isinstance(value, int) or isinstance(value, bool)):
                raise AuthenticationError(AuthFailure.MALFORMED_TOKEN)
        lifetime = claims["exp"] - claims["iat"]
        if lifetime > self._policy.max_lifetime_seconds:
            raise AuthenticationError(AuthFailure.LIFETIME_TOO_LONG)
        return VerifiedToken(
            header=dict(header),
            claims=dict(claims),
            fingerprint=token_fingerprint(token, header["alg"]),
            expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
            key_thumbprint=key.thumbprint,
            key_id=key.kid,
        )
