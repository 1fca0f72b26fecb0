"""The read port on Firestore: cursor pagination with a fixed page size, errors translated.

Google client types and exceptions stay in this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from p0_receiver.adapters.firestore import bounded_retry
from p0_receiver.auditlog.errors import BackendError, CredentialsMissingError, MissingIndexError
from p0_receiver.queries import QUERY_SHAPES, Direction, QueryShape

DEFAULT_PAGE_SIZE = 300


@contextmanager
def translated_errors(
    service: str, shape: QueryShape | None = None, equals: tuple[str, ...] = ()
) -> Iterator[None]:
    """Google failures as operator errors (credentials, missing index, unavailable)."""
    try:
        yield
    except auth_exceptions.GoogleAuthError as exc:
        raise CredentialsMissingError(f"{type(exc).__name__}: {exc}") from exc
    except google_exceptions.FailedPrecondition as exc:
        if shape is None:
            raise BackendError(service, f"FailedPrecondition: {exc.message}") from exc
        raise MissingIndexError(shape, equals, str(exc.message)) from exc
    except google_exceptions.RetryError as exc:
        cause = exc.cause
        detail = (
            f"{type(cause).__name__}: {getattr(cause, 'message', cause)}" if cause else str(exc)
        )
        raise BackendError(service, f"gave up retrying ({detail})") from exc
    except google_exceptions.GoogleAPIError as exc:
        raise BackendError(
            service, f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
        ) from exc


class FirestoreAuditReader:
    """Pages through the audit collection with ``start_after`` on the last document."""

    def __init__(
        self,
        client: firestore.Client,
        collection: str,
        timeout_seconds: float,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._collection = client.collection(collection)
        self._timeout = timeout_seconds
        self._retry = bounded_retry(timeout_seconds)
        self._page_size = page_size

    def get(self, event_id: str) -> dict[str, Any] | None:
        with translated_errors("Firestore"):
            snapshot = self._collection.document(event_id).get(
                retry=self._retry, timeout=self._timeout
            )
        stored: dict[str, Any] | None = snapshot.to_dict()
        return stored

    def scan(
        self,
        shape: QueryShape,
        *,
        equals: Mapping[str, str],
        lower: datetime | None = None,
        upper: datetime | None = None,
        limit: int | None = None,
        fields: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        if shape not in QUERY_SHAPES:
            raise ValueError(f"query shape {shape.name!r} is not in the catalogue")
        shape.check(equals)
        order = shape.order_field
        query: Any = self._collection
        for name in sorted(equals):
            query = query.where(filter=FieldFilter(name, "==", equals[name]))
        if lower is not None:
            query = query.where(filter=FieldFilter(order, ">=", lower))
        if upper is not None:
            query = query.where(filter=FieldFilter(order, "<", upper))
        direction = (
            firestore.Query.DESCENDING
            if shape.direction is Direction.DESCENDING
            else firestore.Query.ASCENDING
        )
        query = query.order_by(order, direction=direction)
        if fields is not None:
            # The cursor is built from the last document's order field: always fetch it.
            query = query.select(sorted({*fields, order}))
        return self._pages(query, shape, tuple(sorted(equals)), limit)

    def _pages(
        self, query: Any, shape: QueryShape, equals: tuple[str, ...], limit: int | None
    ) -> Iterator[dict[str, Any]]:
        remaining = limit
        last: Any = None
        while remaining is None or remaining > 0:
            size = self._page_size if remaining is None else min(self._page_size, remaining)
            page = query.limit(size)
            if last is not None:
                page = page.start_after(last)
            with translated_errors("Firestore", shape, equals):
                snapshots = list(page.stream(retry=self._retry, timeout=self._timeout))
            for snapshot in snapshots:
                yield snapshot.to_dict() or {}
            if len(snapshots) < size:
                return
            last = snapshots[-1]
            if remaining is not None:
                remaining -= len(snapshots)
