"""A P0 simulator: a dev keypair, tokens signed the way P0 signs them, and deliveries posted.

P0 has not published its claim values, algorithm or lifetime; the defaults here are the local
stack's own choices (docs/http-contract.md, "What is not known about P0 yet"), not P0's.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

DEV_ISSUER = "p0-simulator"
DEV_AUDIENCE = "p0-receiver-local"
DEV_SUBJECT = "my-notifier-service"
DEV_KID = "dev-key-1"
DEV_TOKEN_LIFETIME = timedelta(minutes=5)
SUPPORTED_ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "EdDSA")


@dataclass(frozen=True)
class DevKeypair:
    algorithm: str
    private_pem: bytes
    public_pem: bytes
    kid: str = DEV_KID

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK with kid and alg (another accepted configuration form)."""
        public_key = serialization.load_pem_public_key(self.public_pem)
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(public_key))
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


def generate_keypair(algorithm: str = "ES256", kid: str = DEV_KID) -> DevKeypair:
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "ES384":
        private_key = ec.generate_private_key(ec.SECP384R1())
    elif algorithm == "ES512":
        private_key = ec.generate_private_key(ec.SECP521R1())
    elif algorithm == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unsupported algorithm {algorithm}; choose one of {SUPPORTED_ALGORITHMS}")
    return DevKeypair(
        algorithm=algorithm,
        private_pem=private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        public_pem=private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        kid=kid,
    )


def save_keypair(keypair: DevKeypair, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / "private.pem"
    private_path.write_bytes(keypair.private_pem)
    private_path.chmod(0o600)
    (directory / "public.pem").write_bytes(keypair.public_pem)
    (directory / "public.jwk.json").write_text(json.dumps(keypair.public_jwk(), indent=2) + "\n")
    (directory / "key.json").write_text(
        json.dumps({"algorithm": keypair.algorithm, "kid": keypair.kid}) + "\n"
    )


def load_keypair(directory: Path) -> DevKeypair:
    meta = json.loads((directory / "key.json").read_text())
    return DevKeypair(
        algorithm=meta["algorithm"],
        private_pem=(directory / "private.pem").read_bytes(),
        public_pem=(directory / "public.pem").read_bytes(),
        kid=meta["kid"],
    )


def load_or_create_keypair(directory: Path, algorithm: str = "ES256") -> DevKeypair:
    if (directory / "key.json").is_file():
        return load_keypair(directory)
    keypair = generate_keypair(algorithm)
    save_keypair(keypair, directory)
    return keypair


def sign_token(
    keypair: DevKeypair,
    *,
    now: datetime,
    issuer: str = DEV_ISSUER,
    audience: str = DEV_AUDIENCE,
    subject: str = DEV_SUBJECT,
    lifetime: timedelta = DEV_TOKEN_LIFETIME,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """A compact JWS with the five claims P0 documents (sub, iss, aud, iat, exp)."""
    issued_at = int(now.timestamp())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued_at,
        "exp": issued_at + int(lifetime.total_seconds()),
        **(extra_claims or {}),
    }
    return jwt.encode(
        claims, keypair.private_pem, algorithm=keypair.algorithm, headers={"kid": keypair.kid}
    )


@dataclass(frozen=True)
class DeliveryResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def post_delivery(
    url: str,
    body: bytes,
    *,
    token: str | None,
    content_type: str = "application/json",
    method: str = "POST",
    timeout: float = 30.0,
    extra_headers: dict[str, str] | None = None,
) -> DeliveryResponse:
    """POST like P0 does: ``Authorization: Bearer <JWT>`` and a JSON body."""
    headers = {"Content-Type": content_type, **(extra_headers or {})}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return DeliveryResponse(answer.status, dict(answer.headers.items()), answer.read())
    except urllib.error.HTTPError as failure:
        return DeliveryResponse(failure.code, dict(failure.headers.items()), failure.read())
