"""Google client exceptions as the receiver's own errors: the one translator every adapter uses.

The log-safe part (a reason code and the exception's class name) goes to logs and records;
what the service said goes only into ``explanation``, for an operator's terminal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core import exceptions as google_exceptions
from google.auth import exceptions as auth_exceptions

from p0_receiver.core.errors import (
    CredentialsMissingError,
    DownstreamUnavailableError,
    MissingIndexError,
)
from p0_receiver.core.queries import QueryShape


def _what_was_said(exc: Exception) -> str:
    if isinstance(exc, google_exceptions.RetryError):
        cause = exc.cause
        detail = (
            f"{type(cause).__name__}: {getattr(cause, 'message', cause)}" if cause else str(exc)
        )
        return f"gave up retrying ({detail})"
    return f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"


@contextmanager
def translated(
    service: str, reason: str, *, shape: QueryShape | None = None, equals: tuple[str, ...] = ()
) -> Iterator[None]:
    """Google failures as ``DownstreamUnavailableError`` (credentials and indexes by name).

    ``shape`` and ``equals`` describe the query being run, so that Firestore's
    FAILED_PRECONDITION names the composite index it wants.
    """
    try:
        yield
    except auth_exceptions.GoogleAuthError as exc:
        raise CredentialsMissingError(
            reason, type(exc).__name__, explanation=f"{type(exc).__name__}: {exc}"
        ) from exc
    except google_exceptions.FailedPrecondition as exc:
        if shape is None:
            raise DownstreamUnavailableError(
                reason, type(exc).__name__, explanation=f"{service} failed: {_what_was_said(exc)}"
            ) from exc
        raise MissingIndexError(
            reason,
            query_name=shape.name,
            order=f"{shape.order_field} {shape.direction}",
            equality_fields=equals,
            message=str(exc.message),
        ) from exc
    except (google_exceptions.GoogleAPIError, TimeoutError) as exc:
        # "The service did not do it (or we cannot know)": retry later.
        raise DownstreamUnavailableError(
            reason, type(exc).__name__, explanation=f"{service} failed: {_what_was_said(exc)}"
        ) from exc
