"""The doctor's adapters read Google's answers right: admin API fields and indexes, a topic's
policy, Secret Manager's version list (clients stand in with Google's own message types)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from google.api_core import exceptions as google_exceptions
from google.cloud.firestore_admin_v1 import Field, Index
from google.iam.v1 import policy_pb2  # type: ignore[import-untyped]
from google.type import expr_pb2  # type: ignore[import-untyped]

from p0_receiver.adapters.inspection import (
    FirestoreAdminInspector,
    PubSubTopicInspector,
    SecretManagerVersions,
)
from p0_receiver.core.errors import DownstreamUnavailableError
from p0_receiver.core.queries import Direction, IndexSpec
from p0_receiver.ports import Grant, IndexState

DATABASE = "projects/acme/databases/(default)"
ASC = Index.IndexField.Order.ASCENDING
DESC = Index.IndexField.Order.DESCENDING


class FakeAdminClient:
    """Answers list_fields and list_indexes as the admin API does; remembers the requests."""

    def __init__(self, fields: list[Field], indexes: list[Index]) -> None:
        self._fields = fields
        self._indexes = indexes
        self.requests: list[Any] = []
        self.timeouts: list[float] = []

    def list_fields(self, *, request: dict[str, str], timeout: float) -> list[Field]:
        self.requests.append(request)
        self.timeouts.append(timeout)
        return self._fields

    def list_indexes(self, *, parent: str, timeout: float) -> list[Index]:
        self.requests.append(parent)
        self.timeouts.append(timeout)
        return self._indexes


# The admin API's enums are plain ints to the type checker (its types are not analysed).
def ttl_field(collection: str, name: str, state: int) -> Field:
    return Field(
        name=f"{DATABASE}/collectionGroups/{collection}/fields/{name}",
        ttl_config=Field.TtlConfig(state=state),
    )


def index(*fields: tuple[str, int], **kwargs: Any) -> Index:
    return Index(
        query_scope=kwargs.get("scope", Index.QueryScope.COLLECTION),
        state=kwargs.get("state", Index.State.READY),
        fields=[Index.IndexField(field_path=path, order=order) for path, order in fields],
    )


def test_ttl_policies_by_collection_group_and_field() -> None:
    client = FakeAdminClient(
        [
            ttl_field("p0_notifications", "expireAt", Field.TtlConfig.State.ACTIVE),
            ttl_field("p0_quarantine", "expireAt", Field.TtlConfig.State.CREATING),
        ],
        [],
    )
    admin = FirestoreAdminInspector(lambda: client, "acme", "(default)", 4.0)  # type: ignore[arg-type,return-value]
    assert admin.ttl_policies() == {
        ("p0_notifications", "expireAt"): "ACTIVE",
        ("p0_quarantine", "expireAt"): "CREATING",
    }
    assert client.requests == [
        {"parent": f"{DATABASE}/collectionGroups/-", "filter": "ttlConfig:*"}
    ]
    assert client.timeouts == [4.0]  # every call is bounded


def test_composite_indexes_without_the_document_name_firestore_appends() -> None:
    client = FakeAdminClient(
        [],
        [
            index(("principal", ASC), ("receivedAt", DESC), ("__name__", DESC)),
            index(("objectId", ASC), ("occurredAt", ASC), state=Index.State.CREATING),
            # Neither serves a query of ours: a collection-group index, an array index.
            index(
                ("principal", ASC), ("receivedAt", DESC), scope=Index.QueryScope.COLLECTION_GROUP
            ),
            Index(
                query_scope=Index.QueryScope.COLLECTION,
                state=Index.State.READY,
                fields=[
                    Index.IndexField(
                        field_path="tags", array_config=Index.IndexField.ArrayConfig.CONTAINS
                    ),
                    Index.IndexField(field_path="receivedAt", order=DESC),
                ],
            ),
        ],
    )
    admin = FirestoreAdminInspector(lambda: client, "acme", "(default)", 4.0)  # type: ignore[arg-type,return-value]
    assert admin.composite_indexes("p0_notifications") == [
        IndexState(
            IndexSpec((("principal", Direction.ASCENDING), ("receivedAt", Direction.DESCENDING))),
            "READY",
        ),
        IndexState(
            IndexSpec((("objectId", Direction.ASCENDING), ("occurredAt", Direction.ASCENDING))),
            "CREATING",
        ),
    ]
    assert client.requests == [f"{DATABASE}/collectionGroups/p0_notifications"]


class FakePublisher:
    def __init__(self, policy: policy_pb2.Policy) -> None:
        self._policy = policy
        self.timeouts: list[float] = []

    def get_iam_policy(self, *, request: dict[str, str], timeout: float) -> policy_pb2.Policy:
        self.timeouts.append(timeout)
        if request["resource"] != "projects/acme/topics/events":
            raise google_exceptions.NotFound("no such topic")  # type: ignore[no-untyped-call]
        return self._policy

    def get_topic(self, *, topic: str, timeout: float) -> None:
        self.timeouts.append(timeout)
        if topic != "projects/acme/topics/events":
            raise google_exceptions.NotFound("Resource not found")  # type: ignore[no-untyped-call]


def test_topic_policy_bindings_and_their_conditions() -> None:
    policy = policy_pb2.Policy(
        bindings=[
            policy_pb2.Binding(role="roles/pubsub.publisher", members=["serviceAccount:a@b.c"]),
            policy_pb2.Binding(
                role="roles/pubsub.publisher",
                members=["user:x@b.c"],
                condition=expr_pb2.Expr(expression="request.time < timestamp('2030-01-01Z')"),
            ),
        ]
    )
    publisher = FakePublisher(policy)
    topics = PubSubTopicInspector(lambda: publisher, 4.0)  # type: ignore[arg-type,return-value]
    assert topics.grants("projects/acme/topics/events") == [
        Grant("roles/pubsub.publisher", frozenset({"serviceAccount:a@b.c"})),
        Grant("roles/pubsub.publisher", frozenset({"user:x@b.c"}), conditional=True),
    ]
    assert topics.topic_exists("projects/acme/topics/events")
    assert not topics.topic_exists("projects/acme/topics/other")
    assert publisher.timeouts == [4.0, 4.0, 4.0]


class FakeSession:
    """Answers like Secret Manager's REST API; records what was asked."""

    def __init__(self, status: int, document: dict[str, Any]) -> None:
        self._status = status
        self._document = document
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.timeouts: list[float] = []

    def get(self, url: str, *, params: dict[str, Any], timeout: float) -> requests.Response:
        self.asked.append((url, params))
        self.timeouts.append(timeout)
        response = requests.Response()
        response.status_code = self._status
        response._content = json.dumps(self._document).encode()
        response.request = requests.Request("GET", url).prepare()
        return response


SECRET = "projects/acme/secrets/p0-keys"


def test_enabled_versions_newest_first_without_reading_a_payload() -> None:
    session = FakeSession(
        200,
        {
            "versions": [
                {"name": "projects/123/secrets/p0-keys/versions/4", "state": "ENABLED"},
                {"name": "projects/123/secrets/p0-keys/versions/2", "state": "ENABLED"},
            ]
        },
    )
    secrets = SecretManagerVersions(lambda: session, 4.0)  # type: ignore[arg-type,return-value]
    assert secrets.enabled_versions(SECRET) == ["4", "2"]
    ((url, params),) = session.asked
    assert url.endswith(f"/v1/{SECRET}/versions")  # a list, never ':access'
    assert params["filter"] == "state:ENABLED"
    assert session.timeouts == [4.0]


def test_no_versions_and_no_secret_are_told_apart() -> None:
    empty = SecretManagerVersions(lambda: FakeSession(200, {}), 4.0)  # type: ignore[arg-type,return-value]
    assert empty.enabled_versions(SECRET) == []
    missing = {"error": {"code": 404, "message": "Secret not found", "status": "NOT_FOUND"}}
    absent = SecretManagerVersions(lambda: FakeSession(404, missing), 4.0)  # type: ignore[arg-type,return-value]
    assert absent.enabled_versions(SECRET) is None


def test_a_refusal_is_a_downstream_failure_with_googles_message() -> None:
    denied = {
        "error": {
            "code": 403,
            "message": "Permission 'secretmanager.versions.list' denied",
            "status": "PERMISSION_DENIED",
        }
    }
    secrets = SecretManagerVersions(lambda: FakeSession(403, denied), 4.0)  # type: ignore[arg-type,return-value]
    with pytest.raises(DownstreamUnavailableError) as caught:
        secrets.enabled_versions(SECRET)
    assert "secretmanager.versions.list" in caught.value.for_operator()
    assert caught.value.for_operator().startswith("Secret Manager failed: Forbidden")
