"""The deployment checklist (``p0-receiver doctor``): every check, over read-only ports.

Each check takes the settings and ports it needs and returns ``Check`` lines (ok, warn, fail or
skip, with the fix); ``examine`` runs them in order. Keys are described by public facts only:
type, size, kid, algorithms and RFC 7638 thumbprint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from p0_receiver.core.errors import (
    AUTHENTICATE_HINT,
    ConfigurationError,
    CredentialsMissingError,
    DownstreamUnavailableError,
)
from p0_receiver.core.keys import PublicKey, parse_public_keys, usable_algorithms
from p0_receiver.core.quarantine import (
    TOKEN_BOUND_EXPIRE_AT,
    QuarantineField,
    token_bound_collection,
)
from p0_receiver.core.queries import (
    AUDIT_TTL_FIELD,
    TOKEN_LEDGER_TTL_FIELD,
    IndexSpec,
    required_indexes,
)
from p0_receiver.core.thumbprints import public_jwk
from p0_receiver.ports import (
    DoctorPorts,
    FirestoreAdmin,
    FirestoreProbe,
    Grant,
    SecretVersions,
    TopicAdmin,
    TopicPolicy,
    Unavailable,
)
from p0_receiver.settings import OperatorSettings, Settings, load_operator_settings, load_settings


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but a person should decide something
    FAIL = "fail"  # do not register the webhook yet
    SKIP = "skip"  # not checked here (the emulators lack the API, or an earlier check failed)


@dataclass(frozen=True)
class Check:
    """One line of the checklist. ``facts`` are the same findings for machines."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DoctorOptions:
    runtime_account: str | None = None  # the function's service account email
    key_secret: str | None = None  # a secret id, or projects/P/secrets/S


# --- check names (stable: --format json carries them) -----------------------------------------

SETTINGS = "settings"
KEYS = "keys"
ISSUER = "issuer-pinned"
AUDIENCE = "audience-pinned"
FIRESTORE = "firestore"
AUDIT_TTL = "audit-ttl"
LEDGER_TTL = "ledger-ttl"
QUARANTINE_TTL = "quarantine-ttl"
QUARANTINE_BOUND_TTL = "quarantine-bound-ttl"
INDEXES = "audit-indexes"
TOPIC = "topic"
PUBLISHER = "runtime-may-publish"
KEY_SECRET = "key-secret"
CLOUD_CHECKS = (
    FIRESTORE,
    AUDIT_TTL,
    LEDGER_TTL,
    QUARANTINE_TTL,
    QUARANTINE_BOUND_TTL,
    INDEXES,
    TOPIC,
    PUBLISHER,
    KEY_SECRET,
)

# Predefined roles that carry pubsub.topics.publish. A custom role is not recognised: the
# policy names it, not its permissions.
PUBLISHING_ROLES = frozenset(
    {
        "roles/pubsub.publisher",
        "roles/pubsub.editor",
        "roles/pubsub.admin",
        "roles/editor",
        "roles/owner",
    }
)

_TERRAFORM = "run `terraform apply` in terraform/"
_UNPINNED_FIX = (
    "P0 does not publish its tokens' {claim}; once the first delivery is recorded, read it from "
    "the record's token.claims (`p0-receiver audit show EVENT_ID`) and set {variable} to it"
)


def _skipped(name: str, why: str) -> Check:
    return Check(name, Status.SKIP, f"skipped: {why}")


def _failure(name: str, problem: DownstreamUnavailableError, fix: str) -> Check:
    # A credentials problem has one fix whatever was being checked.
    chosen = AUTHENTICATE_HINT if isinstance(problem, CredentialsMissingError) else fix
    return Check(name, Status.FAIL, problem.for_operator(), chosen)


def _asked[T](call: Callable[[], T]) -> T | DownstreamUnavailableError:
    """The port's answer, or the failure it reported (adapters translate every Google error)."""
    try:
        return call()
    except DownstreamUnavailableError as problem:
        return problem


# --- configuration ------------------------------------------------------------------------------


def check_settings(environ: Mapping[str, str]) -> tuple[Check, Settings | None]:
    """The receiver's own validation, as its cold start runs it."""
    try:
        settings = load_settings(environ)
    except ConfigurationError as problem:
        return (
            Check(
                SETTINGS,
                Status.FAIL,
                str(problem),
                f"set {problem.variable} as the function's deploy sets it (the function "
                "would not start with this configuration)",
                {"variable": problem.variable},
            ),
            None,
        )
    detail = (
        f"project {settings.project}, topic {settings.topic_path}, database "
        f"{settings.firestore_database}, collections {settings.firestore_collection}, "
        f"{settings.token_collection}, {settings.quarantine_collection}"
    )
    return Check(SETTINGS, Status.OK, detail), settings


def _key_shape(key: PublicKey) -> tuple[str, str]:
    jwk = public_jwk(key.key)
    if jwk["kty"] == "RSA":
        return "RSA", f"{getattr(key.key, 'key_size', 0)} bits"
    return str(jwk["kty"]), str(jwk["crv"])


def check_keys(settings: Settings | None) -> list[Check]:
    """Every configured key parses, and can verify at least one allowed algorithm."""
    if settings is None:
        return [_skipped(KEYS, "the settings are invalid")]
    variable = "P0_PUBLIC_KEYS" if settings.public_keys is not None else "P0_PUBLIC_KEYS_FILE"
    try:
        keys = parse_public_keys(settings.read_public_keys(), variable=variable)
        algorithms = usable_algorithms(keys, settings.jwt_algorithms)
    except ConfigurationError as problem:
        fix = (
            f"put P0's public key(s) in {problem.variable}: PEM, a JWK or a JWKS"
            if problem.variable == variable
            else f"correct {problem.variable}"
        )
        return [Check(KEYS, Status.FAIL, str(problem), fix, {"variable": problem.variable})]
    checks = []
    for index, (key, usable) in enumerate(zip(keys, algorithms, strict=True), start=1):
        kind, size = _key_shape(key)
        facts = {
            "source": variable,
            "type": kind,
            "size": size,
            "kid": key.kid,
            "algorithms": sorted(usable),
            "thumbprint": key.thumbprint,
        }
        detail = (
            f"{kind} {size}, kid {key.kid or '(none)'}, algorithms {' '.join(sorted(usable))}, "
            f"thumbprint {key.thumbprint} (from {variable})"
        )
        checks.append(Check(f"key-{index}", Status.OK, detail, facts=facts))
    return checks


def check_claims_pinned(settings: Settings | None) -> list[Check]:
    """``iss`` and ``aud`` pinned, or a warning: required but unpinned, any value passes.

    A warning, not a failure: P0 does not publish these values, so before the first delivery
    (which needs the webhook registered) nobody can know what to pin.
    """
    if settings is None:
        return [_skipped(name, "the settings are invalid") for name in (ISSUER, AUDIENCE)]
    checks = []
    for name, claim, variable, value, risk in (
        (
            ISSUER,
            "iss",
            "P0_JWT_ISSUER",
            settings.jwt_issuer,
            "whatever issuer a token names is not compared",
        ),
        (
            AUDIENCE,
            "aud",
            "P0_JWT_AUDIENCE",
            settings.jwt_audience,
            "a token P0 signed for another receiver verifies here too",
        ),
    ):
        if value is not None:
            checks.append(Check(name, Status.OK, f"{claim} must equal {value} ({variable})"))
        else:
            checks.append(
                Check(
                    name,
                    Status.WARN,
                    f"{variable} unset: {claim} is required but any value passes ({risk})",
                    _UNPINNED_FIX.format(claim=claim, variable=variable),
                )
            )
    return checks


# --- Firestore ----------------------------------------------------------------------------------


def check_firestore(probe: FirestoreProbe, settings: OperatorSettings) -> Check:
    where = f"database {settings.firestore_database} of project {settings.project}"
    answer = _asked(lambda: probe.read_one(settings.firestore_collection))
    if isinstance(answer, DownstreamUnavailableError):
        return _failure(
            FIRESTORE,
            answer,
            f"check GOOGLE_CLOUD_PROJECT and FIRESTORE_DATABASE; {where} must exist "
            f"({_TERRAFORM}) and you need read access to it",
        )
    return Check(
        FIRESTORE, Status.OK, f"{where} answered a read of {settings.firestore_collection}"
    )


@dataclass(frozen=True)
class TtlPolicy:
    """A TTL policy Terraform declares: which check reports it and its resource there."""

    check: str
    collection: str | None  # None: the settings that name it are invalid
    field: str
    resource: str


def ttl_policies(settings: OperatorSettings, token_collection: str | None) -> list[TtlPolicy]:
    """The TTL policies terraform/firestore.tf declares, on the configured collections."""
    return [
        TtlPolicy(AUDIT_TTL, settings.firestore_collection, AUDIT_TTL_FIELD, "audit_ttl"),
        TtlPolicy(LEDGER_TTL, token_collection, TOKEN_LEDGER_TTL_FIELD, "token_ledger_ttl"),
        TtlPolicy(
            QUARANTINE_TTL,
            settings.quarantine_collection,
            QuarantineField.EXPIRE_AT,
            "quarantine_ttl",
        ),
        TtlPolicy(
            QUARANTINE_BOUND_TTL,
            token_bound_collection(settings.quarantine_collection),
            TOKEN_BOUND_EXPIRE_AT,
            "quarantine_token_bound_ttl",
        ),
    ]


def _ttl_check(
    policy: TtlPolicy, found: Mapping[tuple[str, str], str] | DownstreamUnavailableError
) -> Check:
    fix = f"{_TERRAFORM} (google_firestore_field.{policy.resource})"
    if policy.collection is None:
        return _skipped(policy.check, "the settings are invalid")
    if isinstance(found, DownstreamUnavailableError):
        return _failure(policy.check, found, fix)
    where = f"{policy.collection}.{policy.field}"
    state = found.get((policy.collection, policy.field))
    facts = {"collection": policy.collection, "field": policy.field, "state": state}
    if state is None:
        detail = f"no TTL policy on {where}: expired documents are never deleted"
        return Check(policy.check, Status.FAIL, detail, fix, facts)
    if state == "ACTIVE":
        return Check(policy.check, Status.OK, f"TTL policy on {where} is ACTIVE", "", facts)
    if state == "CREATING":
        return Check(
            policy.check,
            Status.WARN,
            f"TTL policy on {where} is still being created (nothing expires yet)",
            "wait: it becomes ACTIVE on its own (`gcloud firestore fields ttls list`)",
            facts,
        )
    return Check(policy.check, Status.FAIL, f"TTL policy on {where} is {state}", fix, facts)


def check_ttl_policies(
    admin: FirestoreAdmin | Unavailable, wanted: Sequence[TtlPolicy]
) -> list[Check]:
    if isinstance(admin, Unavailable):
        return [_skipped(policy.check, admin.reason) for policy in wanted]
    found = _asked(admin.ttl_policies)
    return [_ttl_check(policy, found) for policy in wanted]


def describe_index(spec: IndexSpec) -> str:
    return "(" + ", ".join(f"{name} {direction}" for name, direction in spec.fields) + ")"


def check_indexes(admin: FirestoreAdmin | Unavailable, collection: str) -> Check:
    """Every composite index the CLI's queries need (``queries.required_indexes()``) READY."""
    if isinstance(admin, Unavailable):
        return _skipped(INDEXES, admin.reason)
    fix = f"{_TERRAFORM} (google_firestore_index.audit)"
    found = _asked(lambda: admin.composite_indexes(collection))
    if isinstance(found, DownstreamUnavailableError):
        return _failure(INDEXES, found, fix)
    states = {index.spec: index.state for index in found}
    required = sorted(required_indexes())
    missing = [spec for spec in required if spec not in states]
    building = [spec for spec in required if states.get(spec) == "CREATING"]
    broken = [spec for spec in required if states.get(spec) not in (None, "READY", "CREATING")]
    facts = {
        "collection": collection,
        "required": len(required),
        "missing": [describe_index(spec) for spec in missing],
        "building": [describe_index(spec) for spec in building],
        "broken": [describe_index(spec) for spec in broken],
    }
    if missing or broken:
        parts = [
            f"{label}: {'; '.join(describe_index(spec) for spec in specs)}"
            for label, specs in (("missing", missing), ("needs repair", broken))
            if specs
        ]
        return Check(INDEXES, Status.FAIL, f"on {collection}, " + "; ".join(parts), fix, facts)
    if building:
        return Check(
            INDEXES,
            Status.WARN,
            f"on {collection}, still building: "
            + "; ".join(describe_index(spec) for spec in building),
            "wait for them to be READY (`gcloud firestore indexes composite list`)",
            facts,
        )
    detail = (
        f"all {len(required)} composite indexes the CLI's queries need on {collection} are READY"
    )
    return Check(INDEXES, Status.OK, detail, "", facts)


# --- Pub/Sub and Secret Manager -----------------------------------------------------------------


def check_topic(topics: TopicAdmin, settings: OperatorSettings) -> Check:
    if settings.pubsub_topic is None:
        return Check(
            TOPIC,
            Status.FAIL,
            "PUBSUB_TOPIC is not set",
            "set PUBSUB_TOPIC (terraform output pubsub_topic)",
        )
    path = settings.topic_path
    fix = (
        f"{_TERRAFORM}, or set PUBSUB_TOPIC to the topic that exists "
        "(terraform output pubsub_topic_id)"
    )
    exists = _asked(lambda: topics.topic_exists(path))
    if isinstance(exists, DownstreamUnavailableError):
        return _failure(TOPIC, exists, fix)
    if not exists:
        return Check(TOPIC, Status.FAIL, f"{path} does not exist", fix)
    return Check(TOPIC, Status.OK, f"{path} exists")


def runtime_member(account: str) -> str:
    """An IAM member for a service account given as an email or already as a member."""
    return account if account.startswith("serviceAccount:") else f"serviceAccount:{account}"


def check_publisher(
    policy: TopicPolicy | Unavailable,
    settings: OperatorSettings,
    runtime_account: str | None,
    *,
    topic_found: bool,
) -> Check:
    """Does the topic's own policy grant the runtime identity a role that may publish?

    Not ``testIamPermissions``: that answers for whoever runs the doctor, not for the function.
    Grants on the project or above are not read (Terraform grants on the topic only).
    """
    if isinstance(policy, Unavailable):
        return _skipped(PUBLISHER, policy.reason)
    if not topic_found:
        return _skipped(PUBLISHER, "no topic to read a policy from (see the topic line)")
    if runtime_account is None:
        return Check(
            PUBLISHER,
            Status.WARN,
            "not checked: no --runtime-account given",
            "pass --runtime-account EMAIL (terraform output runtime_service_account)",
        )
    member = runtime_member(runtime_account)
    path = settings.topic_path
    fix = (
        f"{_TERRAFORM} (google_pubsub_topic_iam_member.runtime_publisher), or `gcloud pubsub "
        f"topics add-iam-policy-binding {path} --member={member} --role=roles/pubsub.publisher`"
    )
    grants = _asked(lambda: policy.grants(path))
    if isinstance(grants, DownstreamUnavailableError):
        return _failure(
            PUBLISHER,
            grants,
            "reading the topic's policy needs pubsub.topics.getIamPolicy (roles/pubsub.viewer)",
        )
    return _publisher_verdict(member, grants, fix)


def _publisher_verdict(member: str, grants: Sequence[Grant], fix: str) -> Check:
    held = [grant for grant in grants if member in grant.members and grant.role in PUBLISHING_ROLES]
    plain_roles = sorted(grant.role for grant in held if not grant.conditional)
    if plain_roles:
        detail = f"the topic's policy grants {member} {', '.join(plain_roles)}"
        return Check(PUBLISHER, Status.OK, detail, "", {"member": member, "roles": plain_roles})
    if held:
        roles = sorted(grant.role for grant in held)
        return Check(
            PUBLISHER,
            Status.WARN,
            f"the topic's policy grants {member} {', '.join(roles)} only under an IAM "
            "condition, which is not evaluated here",
            "make sure the condition holds for the function's publishes",
            {"member": member, "roles": roles},
        )
    return Check(
        PUBLISHER,
        Status.FAIL,
        f"the topic's policy grants {member} no role that may publish (grants on the project "
        "or above are not read; the deployment grants on the topic)",
        fix,
        {"member": member, "roles": []},
    )


def secret_name(secret: str, project: str) -> str:
    return secret if secret.startswith("projects/") else f"projects/{project}/secrets/{secret}"


def check_key_secret(
    secrets: SecretVersions | Unavailable, settings: OperatorSettings, secret: str | None
) -> Check:
    """The key secret has an enabled version (what the deploy pins); its payload is not read."""
    if isinstance(secrets, Unavailable):
        return _skipped(KEY_SECRET, secrets.reason)
    if secret is None:
        return Check(
            KEY_SECRET,
            Status.WARN,
            "not checked: no --key-secret given",
            "pass --key-secret SECRET (terraform output p0_public_keys_secret)",
        )
    name = secret_name(secret, settings.project)
    add = f"`gcloud secrets versions add {name} --data-file=P0_PUBLIC_KEY_FILE`"
    versions = _asked(lambda: secrets.enabled_versions(name))
    if isinstance(versions, DownstreamUnavailableError):
        return _failure(
            KEY_SECRET, versions, "listing versions needs secretmanager.versions.list on it"
        )
    if versions is None:
        return Check(
            KEY_SECRET,
            Status.FAIL,
            f"{name} does not exist",
            f"{_TERRAFORM}, or pass the secret it created (terraform output p0_public_keys_secret)",
        )
    if not versions:
        return Check(
            KEY_SECRET, Status.FAIL, f"{name} has no enabled version", f"add P0's public key: {add}"
        )
    detail = (
        f"{name} has {len(versions)} enabled version(s); the newest, {versions[0]}, is the one "
        "a deploy pins"
    )
    return Check(KEY_SECRET, Status.OK, detail, "", {"enabled_versions": list(versions)})


# --- the checklist ------------------------------------------------------------------------------


def examine(
    environ: Mapping[str, str],
    connect: Callable[[OperatorSettings], DoctorPorts],
    options: DoctorOptions,
) -> list[Check]:
    """Every check, in the order a person fixes them: configuration, Firestore, Pub/Sub, secret."""
    settings_check, settings = check_settings(environ)
    checks = [settings_check, *check_keys(settings), *check_claims_pinned(settings)]
    operator: OperatorSettings | None = settings
    if operator is None:
        try:
            operator = load_operator_settings(environ)
        except ConfigurationError:
            return checks + [_skipped(name, "the settings are invalid") for name in CLOUD_CHECKS]
    ports = connect(operator)
    checks.append(check_firestore(ports.firestore, operator))
    token_collection = settings.token_collection if settings is not None else None
    wanted = ttl_policies(operator, token_collection)
    checks.extend(check_ttl_policies(ports.firestore_admin, wanted))
    checks.append(check_indexes(ports.firestore_admin, operator.firestore_collection))
    topic = check_topic(ports.topics, operator)
    checks.append(topic)
    checks.append(
        check_publisher(
            ports.topic_policy,
            operator,
            options.runtime_account,
            topic_found=topic.status is Status.OK,
        )
    )
    checks.append(check_key_secret(ports.secrets, operator, options.key_secret))
    return checks


def failed(checks: Sequence[Check]) -> bool:
    return any(check.status is Status.FAIL for check in checks)
