"""Builds ``openapi.yaml`` from the receiver's own models, enums and error classes.

Request schemas come from the pydantic models (``p0_receiver.core.events``), statuses and codes from
the error classes' ``status``/``code``, the 401 reasons from ``AuthFailure``. Only what no code
declares is written here: prose, and the 503 reasons (a test observes them from the adapters).
Regenerate with ``make openapi``; ``tests/unit/test_openapi_document.py`` fails when stale.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from p0_receiver.core.errors import (
    AuthenticationError,
    AuthFailure,
    DownstreamUnavailableError,
    InternalError,
    MalformedJsonError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    ReceiverError,
    SchemaViolationError,
    UnstorableRecordError,
    UnsupportedMediaTypeError,
)
from p0_receiver.core.events import (
    PREAPPROVAL_CREATED,
    REQUEST_EVENT_PREFIX,
    Envelope,
    PreapprovalCreated,
    RequestEvent,
)
from p0_receiver.settings import Settings
from p0_receiver.usecases.deliver import DeliveryStatus

DOCUMENT_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"
_REF = "#/components/schemas/{model}"
# RFC 7493 (I-JSON): integers beyond +-(2**53 - 1) cannot be hashed canonically: answered 422.
_IJSON_MAX = 2**53 - 1

# The 503 reasons: the only enumeration with no declaration in the code (each adapter passes
# its own string). tests/integration/test_openapi_reasons.py makes every adapter fail and
# compares what they raise with these keys.
UNAVAILABLE_REASONS: Mapping[str, str] = {
    "clients_unavailable": "the Google clients could not be built yet (e.g. no credentials)",
    "ledger_unavailable": "the replay ledger (Firestore) failed or timed out",
    "audit_unavailable": "the audit write (Firestore) failed or timed out",
    "publish_failed": "the publish (Pub/Sub) failed or timed out; the record stays `received`",
}

# Every error the endpoint answers, with when; grouped by their `status` into responses.
_ERROR_RESPONSES: tuple[tuple[type[ReceiverError], str], ...] = (
    (MalformedJsonError, "Not UTF-8 JSON, duplicate object keys, or NaN/Infinity."),
    (
        AuthenticationError,
        "The bearer token was refused. Checked before the body is read, except "
        "`token_replayed`: a token already used with another body, refused by the reuse policy.",
    ),
    (MethodNotAllowedError, "Answered to any method but POST."),
    (PayloadTooLargeError, "The body is over MAX_BODY_BYTES."),
    (UnsupportedMediaTypeError, "Content-Type is not application/json (UTF-8)."),
    (
        SchemaViolationError,
        "The envelope or the preapproval-created data does not match the schema, an integer is "
        "outside the I-JSON range, or strict mode refuses an unknown event type.",
    ),
    (
        UnstorableRecordError,
        "Firestore refuses the record for good (InvalidArgument): retrying cannot help.",
    ),
    (InternalError, "A bug: answered as JSON all the same."),
    (DownstreamUnavailableError, "Firestore or Pub/Sub failed or timed out: retry later."),
)


def _tidy(schema: Any) -> Any:
    """Drop pydantic's generated titles and bound every integer to the I-JSON range."""
    if isinstance(schema, list):
        return [_tidy(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tidied = {
        key: _tidy(value)
        for key, value in schema.items()
        if not (key == "title" and isinstance(value, str))
    }
    if tidied.get("type") == "integer":
        tidied.setdefault("minimum", -_IJSON_MAX)
        tidied.setdefault("maximum", _IJSON_MAX)
    return tidied


def model_schemas() -> dict[str, Any]:
    """The pydantic models as OpenAPI component schemas (refs point into components)."""
    _, definitions = models_json_schema(
        [(Envelope, "validation"), (PreapprovalCreated, "validation")], ref_template=_REF
    )
    return {name: _tidy(schema) for name, schema in sorted(definitions["$defs"].items())}


def _notification(event_type: dict[str, Any], data: dict[str, Any], description: str) -> Any:
    envelope = model_schemas()["Envelope"]
    properties = dict(envelope["properties"])
    properties["eventType"] = {**properties["eventType"], **event_type}
    properties["data"] = data
    return {
        "type": "object",
        "description": description,
        "additionalProperties": True,
        "required": envelope["required"],
        "properties": properties,
    }


def notification_schemas() -> dict[str, Any]:
    lifted = ", ".join(f"`{name}`" for name in RequestEvent.model_fields)
    return {
        "P0Notification": {
            "description": (
                "A custom-notifier delivery: P0's envelope and the event's `data`. Unknown "
                "fields are kept; unknown event types are accepted and kept verbatim unless "
                "P0_REJECT_UNKNOWN_EVENT_TYPES is true (then 422)."
            ),
            "anyOf": [
                {"$ref": _REF.format(model="PreapprovalCreatedNotification")},
                {"$ref": _REF.format(model="RequestNotification")},
                {"$ref": _REF.format(model="OtherNotification")},
            ],
        },
        "PreapprovalCreatedNotification": _notification(
            {"const": PREAPPROVAL_CREATED},
            {"$ref": _REF.format(model="PreapprovalCreated")},
            "The one event P0 documents field by field: `data` is validated in full.",
        ),
        "RequestNotification": _notification(
            {"pattern": f"^{REQUEST_EVENT_PREFIX}\\S*$"},
            {
                "type": "object",
                "additionalProperties": True,
                "description": (
                    "Open: P0 has not published request-event bodies, so any object is "
                    f"accepted and kept. The receiver knows these optional fields: {lifted} "
                    "(the record's shapeCheck is `lenient` when those present have the "
                    "expected types, `unrecognised` otherwise)."
                ),
            },
            "A request event (`request-created`, `request-approved`, ...).",
        ),
        "OtherNotification": _notification(
            {"not": {"const": PREAPPROVAL_CREATED}},
            {"type": "object", "additionalProperties": True},
            "Any other event type: kept verbatim.",
        ),
    }


def _error_body(error: type[ReceiverError], extra: Mapping[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "code": {"const": error.code},
        "message": {"type": "string"},
        **extra,
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "message", *extra],
                "properties": properties,
            }
        },
    }


def error_schemas() -> dict[str, Any]:
    violations = {
        "type": "array",
        "description": "Field paths and problems only, never the offending values.",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["field", "problem"],
            "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
        },
    }
    extras: dict[type[ReceiverError], dict[str, Any]] = {
        AuthenticationError: {"reason": {"enum": [str(reason) for reason in AuthFailure]}},
        SchemaViolationError: {"violations": violations},
        DownstreamUnavailableError: {"reason": {"enum": list(UNAVAILABLE_REASONS)}},
    }
    return {
        _schema_name(error): _error_body(error, extras.get(error, {}))
        for error, _ in _ERROR_RESPONSES
    }


def _schema_name(error: type[ReceiverError]) -> str:
    return error.__name__.removesuffix("Error") + "Answer"


def _json(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _headers(error: type[ReceiverError]) -> dict[str, Any]:
    if issubclass(error, AuthenticationError):
        return {
            "WWW-Authenticate": {
                "required": True,
                "description": 'RFC 6750; `error="invalid_token"` unless no token was sent.',
                "schema": {
                    "type": "string",
                    "pattern": '^Bearer realm="p0-notifications"(, error="invalid_token")?$',
                },
            }
        }
    if issubclass(error, MethodNotAllowedError):
        return {"Allow": {"required": True, "schema": {"const": "POST"}}}
    if issubclass(error, DownstreamUnavailableError):
        return {
            "Retry-After": {
                "required": True,
                "description": "Seconds (RETRY_AFTER_SECONDS).",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return {}


def responses() -> dict[str, Any]:
    answered: dict[str, Any] = {
        "200": {
            "description": "Recorded and published, or a repeat of a recorded body.",
            "content": _json({"$ref": _REF.format(model="Accepted")}),
        }
    }
    by_status: dict[int, list[tuple[type[ReceiverError], str]]] = {}
    for error, description in _ERROR_RESPONSES:
        by_status.setdefault(error.status, []).append((error, description))
    for status in sorted(by_status):
        errors = by_status[status]
        refs = [{"$ref": _REF.format(model=_schema_name(error))} for error, _ in errors]
        response: dict[str, Any] = {
            "description": " Or: ".join(description for _, description in errors),
            "content": _json(refs[0] if len(refs) == 1 else {"oneOf": refs}),
        }
        headers: dict[str, Any] = {}
        for error, _ in errors:
            headers.update(_headers(error))
        if headers:
            response["headers"] = headers
        answered[str(status)] = response
    return answered


def build_document() -> dict[str, Any]:
    max_body = Settings.model_fields["max_body_bytes"].default
    schemas = {
        **notification_schemas(),
        **model_schemas(),
        "Accepted": {
            "type": "object",
            "additionalProperties": False,
            "required": ["status", "eventId"],
            "properties": {
                "status": {"enum": [str(status) for status in DeliveryStatus]},
                "eventId": {
                    "type": "string",
                    "pattern": "^[0-9a-f]{64}$",
                    "description": "SHA-256 of the body's RFC 8785 canonical JSON.",
                },
            },
        },
        **error_schemas(),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "P0 notification receiver",
            "version": "1",
            "description": (
                "The webhook behind a P0 Security custom notifier. Success is exactly 200; "
                "every answer is application/json. Generated by `make openapi` from the "
                "receiver's models and error classes: edit tests/openapi_document.py, not this "
                "file."
            ),
        },
        "servers": [
            {
                "url": "https://{region}-{project}.cloudfunctions.net/{function}",
                "description": "A deployed gen2 function (terraform output webhook_url).",
                "variables": {
                    "region": {"default": "us-central1"},
                    "project": {"default": "my-project"},
                    "function": {"default": "p0-receiver"},
                },
            }
        ],
        "paths": {
            "/": {
                "post": {
                    "operationId": "receiveNotification",
                    "summary": "Verify, record and publish one P0 delivery",
                    "description": (
                        "Checks run in this order: method, bearer token, Content-Type, size "
                        f"(MAX_BODY_BYTES, default {max_body}), JSON, schema, replay ledger. "
                        "A refused request records nothing and publishes nothing."
                    ),
                    "security": [{"p0Bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": _json({"$ref": _REF.format(model="P0Notification")}),
                    },
                    "responses": responses(),
                }
            }
        },
        "components": {
            "securitySchemes": {
                "p0Bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "P0's signed JWT, verified against pinned keys; exp, iat, iss, aud and "
                        "sub are required."
                    ),
                }
            },
            "schemas": schemas,
        },
    }


def render() -> str:
    header = "# Generated by `make openapi` (tests/openapi_document.py): do not edit by hand.\n"
    body = yaml.safe_dump(build_document(), sort_keys=False, allow_unicode=True, width=100)
    return header + body


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else DOCUMENT_PATH
    target.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
