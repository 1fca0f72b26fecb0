"""The receiver's configuration: one frozen model, read once from the environment.

The environment variable names are a public contract (docs/configuration.md, Terraform,
Cloud Build).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from p0_receiver.core.errors import ConfigurationError
from p0_receiver.core.findings import ReviewPolicy, parse_business_hours

# P0 payloads are a few hundred bytes; the audit record keeps the body verbatim and must
# stay well inside Firestore's 1 MiB document limit, hence the hard ceiling.
MAX_BODY_BYTES_CEILING = 256 * 1024

_TOPIC_PREFIX = "projects/"
_COLLECTION_ID = r"^[A-Za-z0-9_\-]{1,100}$"
# Every algorithm some configured key type can verify (keys.py pins each key to a subset).
KNOWN_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class TokenReusePolicy(StrEnum):
    """What to do when a token already seen comes back with another body (P0_TOKEN_REUSE)."""

    BURST = "burst"  # accept deterministic-algorithm reuse within the burst window; refuse the rest
    REJECT = "reject"  # refuse every reuse
    ACCEPT = "accept"  # accept every reuse, flagged


class Tracing(StrEnum):
    OFF = "off"  # nothing of OpenTelemetry is imported
    ON = "on"  # spans for verify, the Firestore commit and the publish, exported to Cloud Trace


class OperatorSettings(BaseModel):
    """Where the audit log and the topic live: all the operator CLI reads (no key material)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False, defer_build=True)

    project: Annotated[str, Field(alias="GOOGLE_CLOUD_PROJECT", min_length=1)]
    # Optional here: querying the audit log needs no topic; redrive and replay ask for it.
    pubsub_topic: Annotated[str | None, Field(alias="PUBSUB_TOPIC", min_length=1)] = None
    firestore_database: Annotated[str, Field(alias="FIRESTORE_DATABASE", min_length=1)] = (
        "(default)"
    )
    firestore_collection: Annotated[
        str, Field(alias="FIRESTORE_COLLECTION", pattern=_COLLECTION_ID)
    ] = "p0_notifications"
    quarantine_collection: Annotated[
        str, Field(alias="FIRESTORE_QUARANTINE_COLLECTION", pattern=_COLLECTION_ID)
    ] = "p0_quarantine"
    # A released token_reused body is accepted under its token in the replay ledger.
    token_collection: Annotated[
        str, Field(alias="FIRESTORE_TOKEN_COLLECTION", pattern=_COLLECTION_ID)
    ] = "p0_token_fingerprints"
    firestore_timeout_seconds: Annotated[
        float, Field(alias="FIRESTORE_TIMEOUT_SECONDS", gt=0, le=10)
    ] = 4.0
    publish_timeout_seconds: Annotated[
        float, Field(alias="PUBSUB_PUBLISH_TIMEOUT_SECONDS", gt=0, le=15)
    ] = 8.0
    # The operator's too: a body released from the quarantine is recorded with it.
    audit_retention_days: Annotated[int, Field(alias="AUDIT_RETENTION_DAYS", ge=0, le=36_500)] = 400
    # Access-review thresholds: the receiver applies the rules on receipt, the operator's
    # report applies all of them (docs/operate.md, "Access review").
    review_long_grant_hours: Annotated[
        int, Field(alias="REVIEW_LONG_GRANT_HOURS", ge=1, le=8760)
    ] = 8
    review_fast_approval_seconds: Annotated[
        int, Field(alias="REVIEW_FAST_APPROVAL_SECONDS", ge=0, le=3600)
    ] = 60
    review_business_hours: Annotated[str, Field(alias="REVIEW_BUSINESS_HOURS")] = (
        "Mon-Fri 08:00-18:00"
    )
    review_timezone: Annotated[str, Field(alias="REVIEW_TIMEZONE", min_length=1)] = "UTC"
    review_never_ended_grace_hours: Annotated[
        int, Field(alias="REVIEW_NEVER_ENDED_GRACE_HOURS", ge=0, le=720)
    ] = 1
    # Comma-separated approvalSource values that name no person (P0 publishes no list).
    review_automatic_sources: Annotated[str, Field(alias="REVIEW_AUTOMATIC_APPROVAL_SOURCES")] = (
        "auto,automatic,policy,pre-approval,preapproval,rule,system"
    )

    @field_validator("*", mode="before")
    @classmethod
    def _blank_means_unset(cls, value: Any) -> Any:
        # Terraform and Cloud Build often pass optional variables as empty strings.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("review_business_hours")
    @classmethod
    def _business_hours_shape(cls, value: str) -> str:
        parse_business_hours(value)
        return value

    @field_validator("review_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone name, e.g. Europe/Berlin or UTC") from None
        return value

    def review_policy(self) -> ReviewPolicy:
        """The access-review rules' thresholds as the core reads them."""
        return ReviewPolicy(
            long_grant=timedelta(hours=self.review_long_grant_hours),
            fast_approval=timedelta(seconds=self.review_fast_approval_seconds),
            business_hours=parse_business_hours(self.review_business_hours),
            timezone=ZoneInfo(self.review_timezone),
            never_ended_grace=timedelta(hours=self.review_never_ended_grace_hours),
            automatic_sources=frozenset(
                name.strip().casefold()
                for name in self.review_automatic_sources.split(",")
                if name.strip()
            ),
        )

    @field_validator("pubsub_topic")
    @classmethod
    def _topic_shape(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith(_TOPIC_PREFIX):
            parts = value.split("/")
            if len(parts) != 4 or parts[2] != "topics" or not parts[1] or not parts[3]:
                raise ValueError("must be a topic id or projects/PROJECT/topics/TOPIC")
        elif "/" in value:
            raise ValueError("must be a topic id or projects/PROJECT/topics/TOPIC")
        return value

    @property
    def topic_path(self) -> str:
        """The fully qualified Pub/Sub topic name."""
        if self.pubsub_topic is None:
            raise ConfigurationError("PUBSUB_TOPIC", "not set (the topic events are published to)")
        if self.pubsub_topic.startswith(_TOPIC_PREFIX):
            return self.pubsub_topic
        return f"projects/{self.project}/topics/{self.pubsub_topic}"


class Settings(OperatorSettings):
    """Everything the receiver reads: the operator's settings plus keys, JWT policy, limits.

    Validated at cold start: a key source and the topic are required here.
    """

    pubsub_topic: Annotated[str, Field(alias="PUBSUB_TOPIC", min_length=1)]
    public_keys: Annotated[str | None, Field(alias="P0_PUBLIC_KEYS")] = None
    public_keys_file: Annotated[Path | None, Field(alias="P0_PUBLIC_KEYS_FILE")] = None
    jwt_issuer: Annotated[str | None, Field(alias="P0_JWT_ISSUER")] = None
    jwt_audience: Annotated[str | None, Field(alias="P0_JWT_AUDIENCE")] = None
    jwt_subject: Annotated[str | None, Field(alias="P0_JWT_SUBJECT")] = None
    jwt_leeway_seconds: Annotated[int, Field(alias="P0_JWT_LEEWAY_SECONDS", ge=0, le=300)] = 30
    jwt_max_lifetime_seconds: Annotated[
        int, Field(alias="P0_JWT_MAX_LIFETIME_SECONDS", ge=60, le=86_400)
    ] = 3600
    # Comma-separated allow-list; unset means every algorithm of each configured key's type.
    jwt_algorithms: Annotated[frozenset[str] | None, Field(alias="P0_JWT_ALGORITHMS")] = None
    token_reuse: Annotated[TokenReusePolicy, Field(alias="P0_TOKEN_REUSE")] = TokenReusePolicy.BURST
    token_burst_seconds: Annotated[int, Field(alias="P0_TOKEN_BURST_SECONDS", ge=0, le=60)] = 5
    quarantine_max_per_token: Annotated[
        int, Field(alias="QUARANTINE_MAX_PER_TOKEN", ge=1, le=1000)
    ] = 10
    quarantine_retention_days: Annotated[
        int, Field(alias="QUARANTINE_RETENTION_DAYS", ge=1, le=3650)
    ] = 30
    reject_unknown_event_types: Annotated[bool, Field(alias="P0_REJECT_UNKNOWN_EVENT_TYPES")] = (
        False
    )
    token_collection: Annotated[
        str, Field(alias="FIRESTORE_TOKEN_COLLECTION", pattern=_COLLECTION_ID)
    ] = "p0_token_fingerprints"
    max_body_bytes: Annotated[
        int, Field(alias="MAX_BODY_BYTES", ge=1024, le=MAX_BODY_BYTES_CEILING)
    ] = 64 * 1024
    retry_after_seconds: Annotated[int, Field(alias="RETRY_AFTER_SECONDS", ge=1, le=3600)] = 30
    tracing: Annotated[Tracing, Field(alias="TRACING")] = Tracing.OFF

    @field_validator("jwt_algorithms", mode="before")
    @classmethod
    def _algorithm_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        names = {name.strip() for name in value.split(",") if name.strip()}
        unknown = names - KNOWN_ALGORITHMS
        if unknown or not names:
            # Name the allowed values, not the input: settings errors never echo what was set.
            raise ValueError(f"must be a comma-separated subset of {sorted(KNOWN_ALGORITHMS)}")
        return frozenset(names)

    @model_validator(mode="after")
    def _exactly_one_key_source(self) -> Settings:
        if (self.public_keys is None) == (self.public_keys_file is None):
            raise ValueError("set exactly one of P0_PUBLIC_KEYS or P0_PUBLIC_KEYS_FILE")
        return self

    def read_public_keys(self) -> str:
        """The configured key material, from the variable or the mounted file."""
        if self.public_keys is not None:
            return self.public_keys
        if self.public_keys_file is None:  # unreachable: _exactly_one_key_source checked it
            raise ConfigurationError("P0_PUBLIC_KEYS", "not set")
        try:
            return self.public_keys_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                "P0_PUBLIC_KEYS_FILE", f"cannot be read ({type(exc).__name__})"
            ) from exc


class RedriveSettings(OperatorSettings):
    """The scheduled redrive target's settings: where the audit log and topic are, and how much
    one pass may do. No key material: the redrive never verifies a token."""

    pubsub_topic: Annotated[str, Field(alias="PUBSUB_TOPIC", min_length=1)]
    # Never race a delivery still in flight (its own publish may be under way).
    redrive_min_age_seconds: Annotated[
        int, Field(alias="REDRIVE_MIN_AGE_SECONDS", ge=0, le=86_400)
    ] = 300
    # One pass must end inside the function's timeout even with every publish slow.
    redrive_max_records: Annotated[int, Field(alias="REDRIVE_MAX_RECORDS", ge=1, le=10_000)] = 500


def _variable_name(loc: tuple[int | str, ...]) -> str:
    return str(loc[0]) if loc else "configuration"


def _validated[S: BaseModel](model: type[S], environ: Mapping[str, str]) -> S:
    try:
        return model.model_validate(dict(environ))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        name = _variable_name(first["loc"])
        if name == "configuration" and "P0_PUBLIC_KEYS" in message:
            name = "P0_PUBLIC_KEYS"
        raise ConfigurationError(name, message) from exc


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Validate the environment once; the error names the first offending variable."""
    return _validated(Settings, environ)


def load_operator_settings(environ: Mapping[str, str]) -> OperatorSettings:
    """The operator CLI's view of the same variables: no key material is required."""
    return _validated(OperatorSettings, environ)


def load_redrive_settings(environ: Mapping[str, str]) -> RedriveSettings:
    """The scheduled redrive target's settings, validated at its cold start."""
    return _validated(RedriveSettings, environ)
