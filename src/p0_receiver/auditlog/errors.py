"""Errors of the read path, each with a message an operator can act on.

    OperatorError                 (never raised itself)
    +-- CredentialsMissingError   no Application Default Credentials (or they cannot refresh)
    +-- MissingIndexError         Firestore's FAILED_PRECONDITION: a composite index is missing
    +-- BackendError              Firestore or Pub/Sub unreachable, denied, or failing

Google's exceptions are translated into these where the clients are called.
"""

from __future__ import annotations

from p0_receiver.queries import QueryShape

AUTHENTICATE_HINT = (
    "authenticate with `gcloud auth application-default login` (or set "
    "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file); for the local emulators "
    "set FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST instead"
)


class OperatorError(Exception):
    """Root of the read path's deliberate failures; ``str()`` is the operator's message."""


class CredentialsMissingError(OperatorError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"no usable Google credentials ({detail}); {AUTHENTICATE_HINT}")


class MissingIndexError(OperatorError):
    """A query needs a composite index the database does not have (yet)."""

    def __init__(self, shape: QueryShape, equality_fields: tuple[str, ...], detail: str) -> None:
        self.shape = shape
        self.equality_fields = equality_fields
        order = f"{shape.order_field} {shape.direction}"
        wanted = ", ".join(f"({name} ASCENDING, {order})" for name in equality_fields) or order
        super().__init__(
            f"Firestore refused the {shape.name!r} query: it needs the composite index(es) "
            f"{wanted} on the audit collection. terraform/firestore.tf declares them "
            "(google_firestore_index.audit); run `terraform apply` and wait for the index to "
            f"finish building. Firestore said: {detail}"
        )


class BackendError(OperatorError):
    """A Google service failed or could not be reached; retrying later may help."""

    def __init__(self, service: str, detail: str) -> None:
        self.service = service
        super().__init__(f"{service} failed: {detail}")
