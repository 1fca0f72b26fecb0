"""Read-only looks at a deployment for ``doctor``: Firestore (data and admin API), the Pub/Sub
topic and its IAM policy, and the key secret's versions in Secret Manager.

Each builds its Google client on first use, so a missing credential fails one check, not all.
Secret Manager is called over REST with google-auth's session (one list call does not justify
another client library); only version names and states are read, never a payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as google_exceptions

from p0_receiver.adapters.firestore import bounded_retry
from p0_receiver.adapters.google_errors import translated
from p0_receiver.core.errors import DownstreamUnavailableError
from p0_receiver.core.queries import Direction, IndexSpec
from p0_receiver.ports import Grant, IndexState

if TYPE_CHECKING:
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import firestore
    from google.cloud.firestore_admin_v1 import FirestoreAdminClient
    from google.pubsub_v1 import PublisherClient

_SECRET_MANAGER = "https://secretmanager.googleapis.com/v1"
# Firestore appends the document name to every composite index it reports.
_DOCUMENT_NAME = "__name__"
# One page is enough to say "has an enabled version" and name the newest.
_VERSIONS_PAGE = 50


class FirestoreReadProbe:
    """Reads one document: the database exists, answers, and lets the caller read."""

    def __init__(self, client: Callable[[], firestore.Client], timeout_seconds: float) -> None:
        self._client = client
        self._timeout = timeout_seconds

    def read_one(self, collection: str) -> None:
        with translated("Firestore", "audit_unavailable"):
            query = self._client().collection(collection).limit(1)
            query.get(retry=bounded_retry(self._timeout), timeout=self._timeout)


def _after(name: str, marker: str) -> str:
    return name.partition(marker)[2].split("/", 1)[0]


class FirestoreAdminInspector:
    """TTL policies and composite indexes of one database, through the Firestore admin API."""

    def __init__(
        self,
        client: Callable[[], FirestoreAdminClient],
        project: str,
        database: str,
        timeout_seconds: float,
    ) -> None:
        self._client = client
        self._database = f"projects/{project}/databases/{database}"
        self._timeout = timeout_seconds

    def ttl_policies(self) -> Mapping[tuple[str, str], str]:
        # gcloud's `firestore fields ttls list` asks the same: every group, fields with a TTL.
        request = {"parent": f"{self._database}/collectionGroups/-", "filter": "ttlConfig:*"}
        with translated("Firestore admin API", "firestore_admin_unavailable"):
            fields = list(self._client().list_fields(request=request, timeout=self._timeout))
        return {
            (_after(field.name, "/collectionGroups/"), _after(field.name, "/fields/")): (
                field.ttl_config.state.name
            )
            for field in fields
        }

    def composite_indexes(self, collection: str) -> Sequence[IndexState]:
        from google.cloud.firestore_admin_v1 import Index

        parent = f"{self._database}/collectionGroups/{collection}"
        with translated("Firestore admin API", "firestore_admin_unavailable"):
            indexes = list(self._client().list_indexes(parent=parent, timeout=self._timeout))
        found = []
        for index in indexes:
            if index.query_scope != Index.QueryScope.COLLECTION:
                continue
            fields = list(index.fields)
            if fields and fields[-1].field_path == _DOCUMENT_NAME:
                fields.pop()
            ordered = [
                (entry.field_path, Direction(Index.IndexField.Order(entry.order).name))
                for entry in fields
                if entry.order != Index.IndexField.Order.ORDER_UNSPECIFIED
            ]
            if len(ordered) == len(fields):  # array and vector indexes serve no query of ours
                found.append(IndexState(IndexSpec(tuple(ordered)), Index.State(index.state).name))
        return found


class PubSubTopicInspector:
    """Whether a topic exists, and its own IAM policy."""

    def __init__(self, client: Callable[[], PublisherClient], timeout_seconds: float) -> None:
        self._client = client
        self._timeout = timeout_seconds

    def topic_exists(self, topic_path: str) -> bool:
        with translated("Pub/Sub", "topic_unavailable"):
            try:
                self._client().get_topic(topic=topic_path, timeout=self._timeout)
            except google_exceptions.NotFound:
                return False
        return True

    def grants(self, topic_path: str) -> Sequence[Grant]:
        with translated("Pub/Sub", "topic_unavailable"):
            policy = self._client().get_iam_policy(
                request={"resource": topic_path}, timeout=self._timeout
            )
        return [
            Grant(
                binding.role,
                frozenset(binding.members),
                conditional=bool(binding.condition.expression),
            )
            for binding in policy.bindings
        ]


def authorized_session() -> AuthorizedSession:
    """A requests session with Application Default Credentials (cloud-platform scope)."""
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]


class SecretManagerVersions:
    """A secret's enabled versions, listed over Secret Manager's REST API."""

    def __init__(self, session: Callable[[], AuthorizedSession], timeout_seconds: float) -> None:
        self._session = session
        self._timeout = timeout_seconds

    def enabled_versions(self, secret_name: str) -> Sequence[str] | None:
        import requests

        params: dict[str, Any] = {"filter": "state:ENABLED", "pageSize": _VERSIONS_PAGE}
        with translated("Secret Manager", "secret_unavailable"):
            try:
                response = self._session().get(
                    f"{_SECRET_MANAGER}/{secret_name}/versions",
                    params=params,
                    timeout=self._timeout,
                )
            except requests.RequestException as exc:
                raise DownstreamUnavailableError(
                    "secret_unavailable",
                    type(exc).__name__,
                    explanation=f"Secret Manager failed: {type(exc).__name__}",
                ) from exc
            if response.status_code == requests.codes.not_found:
                return None
            if not response.ok:
                # Google's error document: the status and its message (never a payload).
                raise google_exceptions.from_http_response(response)  # type: ignore[no-untyped-call]
        versions = response.json().get("versions", [])
        # Newest first, as the API lists them; a name ends in the version's number.
        return [str(version["name"]).rsplit("/", 1)[-1] for version in versions]
