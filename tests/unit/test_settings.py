"""Settings: defaults, validation, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from p0_receiver.core.errors import ConfigurationError
from p0_receiver.settings import TokenReusePolicy, load_settings

MINIMAL = {
    "GOOGLE_CLOUD_PROJECT": "acme-prod",
    "PUBSUB_TOPIC": "p0-notifications",
    "P0_PUBLIC_KEYS": "-----BEGIN PUBLIC KEY-----...",
}


def test_defaults_are_documented_values() -> None:
    settings = load_settings(MINIMAL)
    assert settings.firestore_database == "(default)"
    assert settings.firestore_collection == "p0_notifications"
    assert settings.token_collection == "p0_token_fingerprints"
    assert settings.max_body_bytes == 64 * 1024
    assert settings.jwt_leeway_seconds == 30
    assert settings.jwt_max_lifetime_seconds == 3600
    assert settings.audit_retention_days == 400
    assert settings.reject_unknown_event_types is False
    assert settings.tracing == "off"
    assert settings.topic_path == "projects/acme-prod/topics/p0-notifications"


def test_full_topic_path_is_kept() -> None:
    settings = load_settings({**MINIMAL, "PUBSUB_TOPIC": "projects/hub/topics/p0"})
    assert settings.topic_path == "projects/hub/topics/p0"


def test_blank_optional_values_mean_unset() -> None:
    settings = load_settings({**MINIMAL, "P0_JWT_AUDIENCE": " ", "P0_PUBLIC_KEYS_FILE": ""})
    assert settings.jwt_audience is None


def test_keys_from_a_mounted_file(tmp_path: Path) -> None:
    key_file = tmp_path / "p0.pem"
    key_file.write_text("PEM TEXT")
    env = {k: v for k, v in MINIMAL.items() if k != "P0_PUBLIC_KEYS"}
    settings = load_settings({**env, "P0_PUBLIC_KEYS_FILE": str(key_file)})
    assert settings.read_public_keys() == "PEM TEXT"


def test_unreadable_key_file_names_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in MINIMAL.items() if k != "P0_PUBLIC_KEYS"}
    settings = load_settings({**env, "P0_PUBLIC_KEYS_FILE": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigurationError, match=r"^P0_PUBLIC_KEYS_FILE: cannot be read"):
        settings.read_public_keys()


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        pytest.param({"GOOGLE_CLOUD_PROJECT": None}, "GOOGLE_CLOUD_PROJECT", id="no-project"),
        pytest.param({"PUBSUB_TOPIC": None}, "PUBSUB_TOPIC", id="no-topic"),
        pytest.param({"PUBSUB_TOPIC": "a/b"}, "PUBSUB_TOPIC", id="bad-topic"),
        pytest.param({"PUBSUB_TOPIC": "projects/x/subs/y"}, "PUBSUB_TOPIC", id="bad-topic-path"),
        pytest.param({"P0_PUBLIC_KEYS": None}, "P0_PUBLIC_KEYS", id="no-key"),
        pytest.param({"P0_PUBLIC_KEYS_FILE": "/k.pem"}, "P0_PUBLIC_KEYS", id="two-key-sources"),
        pytest.param({"P0_JWT_LEEWAY_SECONDS": "600"}, "P0_JWT_LEEWAY_SECONDS", id="leeway"),
        pytest.param({"MAX_BODY_BYTES": "1048576"}, "MAX_BODY_BYTES", id="body-over-ceiling"),
        pytest.param({"MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES", id="body-not-int"),
        pytest.param({"FIRESTORE_COLLECTION": "a/b"}, "FIRESTORE_COLLECTION", id="collection"),
        pytest.param(
            {"P0_REJECT_UNKNOWN_EVENT_TYPES": "maybe"}, "P0_REJECT_UNKNOWN_EVENT_TYPES", id="bool"
        ),
        pytest.param({"TRACING": "yes"}, "TRACING", id="tracing"),
    ],
)
def test_invalid_settings_name_the_variable(changes: dict[str, str | None], variable: str) -> None:
    env = {**MINIMAL, **changes}
    with pytest.raises(ConfigurationError) as caught:
        load_settings({k: v for k, v in env.items() if v is not None})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_error_never_echoes_the_value() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**MINIMAL, "P0_JWT_MAX_LIFETIME_SECONDS": "s3cr3t-value"})
    assert "s3cr3t-value" not in str(caught.value)


def test_reuse_quarantine_and_algorithm_defaults() -> None:
    settings = load_settings(MINIMAL)
    assert (settings.token_reuse, settings.token_burst_seconds) == (TokenReusePolicy.BURST, 5)
    assert settings.jwt_algorithms is None
    assert settings.quarantine_collection == "p0_quarantine"
    assert (settings.quarantine_max_per_token, settings.quarantine_retention_days) == (10, 30)


def test_algorithm_allow_list_is_parsed_and_blank_means_unset() -> None:
    pinned = load_settings({**MINIMAL, "P0_JWT_ALGORITHMS": " RS256, EdDSA ,"})
    assert pinned.jwt_algorithms == frozenset({"RS256", "EdDSA"})
    assert load_settings({**MINIMAL, "P0_JWT_ALGORITHMS": " "}).jwt_algorithms is None


@pytest.mark.parametrize("value", ["none", "HS256", "rs256", ","])
def test_algorithm_allow_list_refuses_what_no_key_type_signs(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**MINIMAL, "P0_JWT_ALGORITHMS": value})
    assert caught.value.variable == "P0_JWT_ALGORITHMS"
