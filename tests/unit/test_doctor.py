"""``p0-receiver doctor`` over hand-written ports: every check's ok, warn, skip and fail lines,
the exit code, the JSON form, and that nothing but public key facts is ever printed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner, Result

from p0_receiver.core.errors import (
    AUTHENTICATE_HINT,
    CredentialsMissingError,
    DownstreamUnavailableError,
)
from p0_receiver.core.queries import Direction, IndexSpec, required_indexes
from p0_receiver.core.thumbprints import key_thumbprint
from p0_receiver.entrypoints.cli import main
from p0_receiver.entrypoints.cli.operator import OperatorContext
from p0_receiver.ports import (
    DoctorPorts,
    FirestoreAdmin,
    Grant,
    IndexState,
    SecretVersions,
    TopicPolicy,
    Unavailable,
)
from p0_receiver.settings import OperatorSettings
from p0_receiver.usecases.doctor import Check, DoctorOptions, Status, examine
from tests.support import AUDIENCE, ISSUER, keypair

PROJECT = "acme-prod"
TOPIC = f"projects/{PROJECT}/topics/p0-events"
RUNTIME = "p0-receiver@acme-prod.iam.gserviceaccount.com"
SECRET = f"projects/{PROJECT}/secrets/p0-public-keys"
ENV = {
    "GOOGLE_CLOUD_PROJECT": PROJECT,
    "PUBSUB_TOPIC": "p0-events",
    "P0_PUBLIC_KEYS": keypair().public_pem.decode(),
    "P0_JWT_ISSUER": ISSUER,
    "P0_JWT_AUDIENCE": AUDIENCE,
}
HEALTHY_TTL = {
    ("p0_notifications", "expireAt"): "ACTIVE",
    ("p0_token_fingerprints", "expiresAt"): "ACTIVE",
    ("p0_quarantine", "expireAt"): "ACTIVE",
    ("p0_quarantine_per_token", "expireAt"): "ACTIVE",
}
EVERYTHING = DoctorOptions(runtime_account=RUNTIME, key_secret="p0-public-keys")


def down() -> DownstreamUnavailableError:
    return DownstreamUnavailableError(
        "unavailable", "ServiceUnavailable", explanation="Firestore failed: 503 try later"
    )


@dataclass
class FakeFirestore:
    reads: list[str] = field(default_factory=list)
    failure: DownstreamUnavailableError | None = None

    def read_one(self, collection: str) -> None:
        if self.failure is not None:
            raise self.failure
        self.reads.append(collection)


@dataclass
class FakeFirestoreAdmin:
    ttl: dict[tuple[str, str], str] = field(default_factory=lambda: dict(HEALTHY_TTL))
    indexes: dict[str, list[IndexState]] = field(
        default_factory=lambda: {
            "p0_notifications": [IndexState(spec, "READY") for spec in required_indexes()]
        }
    )
    failure: DownstreamUnavailableError | None = None

    def ttl_policies(self) -> Mapping[tuple[str, str], str]:
        if self.failure is not None:
            raise self.failure
        return self.ttl

    def composite_indexes(self, collection: str) -> Sequence[IndexState]:
        if self.failure is not None:
            raise self.failure
        return self.indexes.get(collection, [])


@dataclass
class FakeTopics:
    existing: set[str] = field(default_factory=lambda: {TOPIC})
    policies: dict[str, list[Grant]] = field(
        default_factory=lambda: {
            TOPIC: [Grant("roles/pubsub.publisher", frozenset({f"serviceAccount:{RUNTIME}"}))]
        }
    )

    def topic_exists(self, topic_path: str) -> bool:
        return topic_path in self.existing

    def grants(self, topic_path: str) -> Sequence[Grant]:
        return self.policies.get(topic_path, [])


@dataclass
class FakeSecrets:
    versions: dict[str, list[str]] = field(default_factory=lambda: {SECRET: ["3", "2"]})
    asked: list[str] = field(default_factory=list)

    def enabled_versions(self, secret_name: str) -> Sequence[str] | None:
        self.asked.append(secret_name)
        return self.versions.get(secret_name)


@dataclass
class Deployment:
    """A deployment as the ports see it; every field can be made wrong by a test."""

    firestore: FakeFirestore = field(default_factory=FakeFirestore)
    admin: FirestoreAdmin | Unavailable = field(default_factory=FakeFirestoreAdmin)
    topics: FakeTopics = field(default_factory=FakeTopics)
    policy: TopicPolicy | Unavailable | None = None  # None: the topics fake answers
    secrets: SecretVersions | Unavailable = field(default_factory=FakeSecrets)
    connected_with: list[OperatorSettings] = field(default_factory=list)

    def connect(self, settings: OperatorSettings) -> DoctorPorts:
        self.connected_with.append(settings)
        return DoctorPorts(
            firestore=self.firestore,
            firestore_admin=self.admin,
            topics=self.topics,
            topic_policy=self.topics if self.policy is None else self.policy,
            secrets=self.secrets,
        )

    def examine(
        self, env: Mapping[str, str] = ENV, options: DoctorOptions = EVERYTHING
    ) -> dict[str, Check]:
        return {check.name: check for check in examine(env, self.connect, options)}

    def run(self, *args: str, env: Mapping[str, str] = ENV) -> Result:
        context = OperatorContext(
            environ=dict(env), connect_doctor=lambda settings, _: self.connect(settings)
        )
        return CliRunner().invoke(main, ["doctor", *args], obj=context)


def statuses(checks: Mapping[str, Check]) -> dict[str, Status]:
    return {name: check.status for name, check in checks.items()}


def test_a_healthy_deployment_passes_every_check() -> None:
    world = Deployment()
    checks = world.examine()
    assert statuses(checks) == {
        "settings": Status.OK,
        "key-1": Status.OK,
        "issuer-pinned": Status.OK,
        "audience-pinned": Status.OK,
        "firestore": Status.OK,
        "audit-ttl": Status.OK,
        "ledger-ttl": Status.OK,
        "quarantine-ttl": Status.OK,
        "quarantine-bound-ttl": Status.OK,
        "audit-indexes": Status.OK,
        "topic": Status.OK,
        "runtime-may-publish": Status.OK,
        "key-secret": Status.OK,
    }
    assert world.firestore.reads == ["p0_notifications"]
    assert "the newest, 3," in checks["key-secret"].detail
    assert checks["runtime-may-publish"].facts["roles"] == ["roles/pubsub.publisher"]


def test_the_command_exits_0_and_says_nothing_failed() -> None:
    result = Deployment().run("--runtime-account", RUNTIME, "--key-secret", "p0-public-keys")
    assert result.exit_code == 0, result.output
    assert "✓ ok" in result.stdout
    assert "✗" not in result.stdout
    assert "13 ok: nothing failed" in result.stderr


def test_key_facts_are_public_only() -> None:
    rsa = keypair("RS256", kid="p0-2026")
    jwks = json.dumps({"keys": [rsa.public_jwk(), keypair("EdDSA", kid="p0-ed").public_jwk()]})
    checks = Deployment().examine({**ENV, "P0_PUBLIC_KEYS": jwks})
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    assert checks["key-1"].facts == {
        "source": "P0_PUBLIC_KEYS",
        "type": "RSA",
        "size": "2048 bits",
        "kid": "p0-2026",
        "algorithms": ["RS256"],
        "thumbprint": key_thumbprint(load_pem_public_key(rsa.public_pem)),
    }
    assert checks["key-2"].facts["type"] == "OKP"
    assert checks["key-2"].facts["size"] == "Ed25519"
    assert checks["key-2"].facts["algorithms"] == ["EdDSA"]


def test_the_allow_list_narrows_what_each_key_may_verify() -> None:
    checks = Deployment().examine(
        {
            **ENV,
            "P0_PUBLIC_KEYS": keypair("RS256").public_pem.decode(),
            "P0_JWT_ALGORITHMS": "PS256",
        }
    )
    assert checks["key-1"].facts["algorithms"] == ["PS256"]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"P0_PUBLIC_KEYS": keypair().private_pem.decode()}, "P0_PUBLIC_KEYS"),
        ({"P0_PUBLIC_KEYS": "not a key"}, "P0_PUBLIC_KEYS"),
        ({"P0_JWT_ALGORITHMS": "RS256"}, "P0_JWT_ALGORITHMS"),  # the ES256 key verifies none
    ],
)
def test_a_key_problem_fails_and_names_the_variable(env: dict[str, str], variable: str) -> None:
    world = Deployment()
    result = world.run("--format", "json", env={**ENV, **env})
    assert result.exit_code == 1
    lines = {line["check"]: line for line in json.loads(result.stdout)}
    assert lines["keys"]["status"] == "fail"
    assert lines["keys"]["facts"] == {"variable": variable}
    assert variable in lines["keys"]["fix"]
    # The private key's material is never repeated, in any form.
    body = "".join(keypair().private_pem.decode().splitlines()[1:-1])
    assert body[:40] not in result.output
    # The rest of the checklist still ran.
    assert lines["firestore"]["status"] == "ok"


def test_settings_that_stop_the_cold_start_fail_and_skip_the_keys() -> None:
    env = {name: value for name, value in ENV.items() if name != "P0_PUBLIC_KEYS"}
    world = Deployment()
    checks = world.examine(env)
    assert checks["settings"].status is Status.FAIL
    assert checks["settings"].facts == {"variable": "P0_PUBLIC_KEYS"}
    assert checks["keys"].status is Status.SKIP
    # The cloud checks run on the operator's view of the same variables ...
    assert checks["topic"].status is Status.OK
    assert checks["audit-ttl"].status is Status.OK
    # ... but the ledger collection is only named by the receiver's settings.
    assert checks["ledger-ttl"].status is Status.SKIP


def test_without_a_project_nothing_connects() -> None:
    world = Deployment()
    env = {name: value for name, value in ENV.items() if name != "GOOGLE_CLOUD_PROJECT"}
    result = world.run(env=env)
    assert result.exit_code == 1
    assert world.connected_with == []
    assert "GOOGLE_CLOUD_PROJECT" in result.stdout
    assert result.stdout.count("skipped: the settings are invalid") == 9 + 3


def test_unpinned_issuer_and_audience_warn_but_do_not_fail() -> None:
    env = {k: v for k, v in ENV.items() if k not in ("P0_JWT_ISSUER", "P0_JWT_AUDIENCE")}
    world = Deployment()
    checks = world.examine(env)
    assert checks["issuer-pinned"].status is Status.WARN
    assert checks["audience-pinned"].status is Status.WARN
    assert "another receiver" in checks["audience-pinned"].detail
    assert "audit show" in checks["audience-pinned"].fix
    result = world.run("--runtime-account", RUNTIME, "--key-secret", "p0-public-keys", env=env)
    assert result.exit_code == 0
    assert "! warn" in result.stdout


@pytest.mark.parametrize(
    ("state", "status"),
    [("ACTIVE", Status.OK), ("CREATING", Status.WARN), ("NEEDS_REPAIR", Status.FAIL)],
)
def test_ttl_policy_states(state: str, status: Status) -> None:
    admin = FakeFirestoreAdmin(ttl={**HEALTHY_TTL, ("p0_quarantine", "expireAt"): state})
    checks = Deployment(admin=admin).examine()
    assert checks["quarantine-ttl"].status is status
    assert checks["audit-ttl"].status is Status.OK


def test_a_missing_ttl_policy_fails_with_its_terraform_resource() -> None:
    ttl = dict(HEALTHY_TTL)
    del ttl[("p0_token_fingerprints", "expiresAt")]
    # A TTL on another field of the ledger is not the one the receiver writes.
    ttl[("p0_token_fingerprints", "expireAt")] = "ACTIVE"
    checks = Deployment(admin=FakeFirestoreAdmin(ttl=ttl)).examine()
    assert checks["ledger-ttl"].status is Status.FAIL
    assert "never deleted" in checks["ledger-ttl"].detail
    assert "google_firestore_field.token_ledger_ttl" in checks["ledger-ttl"].fix


def test_ttl_policies_follow_the_configured_collections() -> None:
    admin = FakeFirestoreAdmin(ttl={**HEALTHY_TTL, ("audit_v2", "expireAt"): "ACTIVE"})
    checks = Deployment(admin=admin).examine({**ENV, "FIRESTORE_COLLECTION": "audit_v2"})
    assert checks["audit-ttl"].facts["collection"] == "audit_v2"
    assert checks["audit-ttl"].status is Status.OK
    # The indexes are looked for on the configured collection too (none there).
    assert checks["audit-indexes"].status is Status.FAIL


def test_a_missing_index_fails_and_names_it() -> None:
    wanted = sorted(required_indexes())
    gone = IndexSpec((("principal", Direction.ASCENDING), ("receivedAt", Direction.DESCENDING)))
    near_miss = IndexSpec((("principal", Direction.ASCENDING), ("receivedAt", Direction.ASCENDING)))
    admin = FakeFirestoreAdmin(
        indexes={
            "p0_notifications": [
                *(IndexState(spec, "READY") for spec in wanted if spec != gone),
                IndexState(near_miss, "READY"),  # the wrong direction serves no query
            ]
        }
    )
    check = Deployment(admin=admin).examine()["audit-indexes"]
    assert check.status is Status.FAIL
    assert check.facts["missing"] == ["(principal ASCENDING, receivedAt DESCENDING)"]
    assert "google_firestore_index.audit" in check.fix


def test_an_index_still_building_warns() -> None:
    building = min(required_indexes())
    admin = FakeFirestoreAdmin(
        indexes={
            "p0_notifications": [
                IndexState(spec, "CREATING" if spec == building else "READY")
                for spec in required_indexes()
            ]
        }
    )
    check = Deployment(admin=admin).examine()["audit-indexes"]
    assert check.status is Status.WARN
    assert len(check.facts["building"]) == 1


def test_on_the_emulators_the_admin_iam_and_secret_checks_are_skipped_not_passed() -> None:
    world = Deployment(
        admin=Unavailable("emulator (no admin API)"),
        policy=Unavailable("emulator (no IAM)"),
        secrets=Unavailable("emulator (no Secret Manager)"),
    )
    checks = world.examine()
    for name in (
        "audit-ttl",
        "ledger-ttl",
        "quarantine-ttl",
        "quarantine-bound-ttl",
        "audit-indexes",
    ):
        assert checks[name].status is Status.SKIP
        assert checks[name].detail == "skipped: emulator (no admin API)"
    assert checks["runtime-may-publish"].detail == "skipped: emulator (no IAM)"
    assert checks["key-secret"].status is Status.SKIP
    assert world.run().exit_code == 0


def test_a_failing_service_fails_its_checks_with_what_it_said() -> None:
    world = Deployment(firestore=FakeFirestore(failure=down()))
    result = world.run("--format", "json")
    assert result.exit_code == 1
    lines = {line["check"]: line for line in json.loads(result.stdout)}
    assert lines["firestore"]["status"] == "fail"
    assert lines["firestore"]["detail"] == "Firestore failed: 503 try later"
    assert "FIRESTORE_DATABASE" in lines["firestore"]["fix"]


def test_missing_credentials_point_at_authentication() -> None:
    failure = CredentialsMissingError(
        "firestore_admin_unavailable", "DefaultCredentialsError", explanation="none found"
    )
    checks = Deployment(admin=FakeFirestoreAdmin(failure=failure)).examine()
    assert checks["audit-indexes"].status is Status.FAIL
    assert checks["audit-ttl"].fix == AUTHENTICATE_HINT
    assert "no usable Google credentials" in checks["audit-ttl"].detail


def test_a_missing_topic_fails_and_skips_its_policy() -> None:
    world = Deployment(topics=FakeTopics(existing=set()))
    checks = world.examine()
    assert checks["topic"].status is Status.FAIL
    assert checks["topic"].detail == f"{TOPIC} does not exist"
    assert checks["runtime-may-publish"].status is Status.SKIP


@pytest.mark.parametrize(
    ("grants", "status"),
    [
        ([Grant("roles/pubsub.editor", frozenset({f"serviceAccount:{RUNTIME}"}))], Status.OK),
        # Someone else may publish; the runtime may only read.
        (
            [
                Grant("roles/pubsub.publisher", frozenset({"serviceAccount:other@x.com"})),
                Grant("roles/pubsub.viewer", frozenset({f"serviceAccount:{RUNTIME}"})),
            ],
            Status.FAIL,
        ),
        (
            [
                Grant(
                    "roles/pubsub.publisher",
                    frozenset({f"serviceAccount:{RUNTIME}"}),
                    conditional=True,
                )
            ],
            Status.WARN,
        ),
        ([], Status.FAIL),
    ],
)
def test_the_runtime_identity_must_hold_a_publishing_role_on_the_topic(
    grants: list[Grant], status: Status
) -> None:
    world = Deployment(topics=FakeTopics(policies={TOPIC: grants}))
    check = world.examine()["runtime-may-publish"]
    assert check.status is status
    if status is Status.FAIL:
        assert "add-iam-policy-binding" in check.fix
        assert f"--member=serviceAccount:{RUNTIME}" in check.fix


def test_unnamed_identity_and_secret_warn_as_not_checked() -> None:
    secrets = FakeSecrets()
    checks = Deployment(secrets=secrets).examine(options=DoctorOptions())
    assert checks["runtime-may-publish"].status is Status.WARN
    assert checks["runtime-may-publish"].detail == "not checked: no --runtime-account given"
    assert checks["key-secret"].status is Status.WARN
    assert secrets.asked == []


@pytest.mark.parametrize(
    ("versions", "detail"),
    [
        ({}, f"{SECRET} does not exist"),
        ({SECRET: []}, f"{SECRET} has no enabled version"),
    ],
)
def test_a_key_secret_without_an_enabled_version_fails(
    versions: dict[str, list[str]], detail: str
) -> None:
    checks = Deployment(secrets=FakeSecrets(versions=versions)).examine()
    assert checks["key-secret"].status is Status.FAIL
    assert checks["key-secret"].detail == detail


def test_the_key_secret_may_live_in_another_project() -> None:
    other = "projects/keys-project/secrets/p0"
    secrets = FakeSecrets(versions={other: ["1"]})
    options = DoctorOptions(runtime_account=RUNTIME, key_secret=other)
    assert Deployment(secrets=secrets).examine(options=options)["key-secret"].status is Status.OK
    assert secrets.asked == [other]


@pytest.mark.parametrize(
    "args",
    [
        ["--key-secret", "../../other"],
        ["--key-secret", "projects/p/secrets/s/versions/1"],
        ["--runtime-account", "not-an-email"],
    ],
)
def test_malformed_options_are_usage_errors(args: list[str]) -> None:
    world = Deployment()
    result = world.run(*args)
    assert result.exit_code == 2
    assert world.connected_with == []


def test_text_from_configuration_is_printed_as_text() -> None:
    hostile = "[bold red]kid[/]\x1b[2J\u202e"
    jwk = keypair("ES256").public_jwk() | {"kid": hostile}
    result = Deployment().run(env={**ENV, "P0_PUBLIC_KEYS": json.dumps({"keys": [jwk]})})
    assert result.exit_code == 0, result.output
    assert "[bold red]kid[/]" in result.stdout
    assert "\x1b" not in result.stdout
    assert "\\x1b[2J\\u202e" in result.stdout
    json_result = Deployment().run(
        "--format", "json", env={**ENV, "P0_PUBLIC_KEYS": json.dumps({"keys": [jwk]})}
    )
    (key,) = (line for line in json.loads(json_result.stdout) if line["check"] == "key-1")
    assert key["facts"]["kid"] == hostile
    assert "\x1b" not in json_result.stdout
