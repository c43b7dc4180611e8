"""The OpenAPI document: what FastAPI derives from the routes, plus what it cannot see: the
request bodies the feedback and webhook routes read by hand (to bound their size and nesting
first), limits that come from settings (``k``, the batch size) and the errors any route can
answer (413 for a large body, 503 while the service starts or stops). Schema-driven tools
(schemathesis in tests/serving/test_openapi_fuzz.py) only reach what is documented here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from serving.plex.webhook_payload import PlexPayload
from serving.schemas.feedback import FeedbackEvent
from serving.settings import Settings

REF = "#/components/schemas/{model}"
VALIDATION_ERROR = {"$ref": "#/components/schemas/HTTPValidationError"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _feedback_body(max_batch: int) -> dict[str, Any]:
    event = {"$ref": REF.format(model="FeedbackEvent")}
    batch = {"type": "array", "items": event, "minItems": 1, "maxItems": max_batch}
    return {
        "required": True,
        "description": "One event or a list of them (all valid or none stored). Feedback "
        "names a recommendation_id, or both user and movie; a movie must be in the graph.",
        "content": {
            "application/json": {
                "schema": {"anyOf": [event, batch]},
                "example": {
                    "event_id": "web-7f3a",
                    "type": "rated",
                    "user": "42",
                    "movie": "1",
                    "rating": 4.5,
                },
            }
        },
    }


def _webhook_body() -> dict[str, Any]:
    form = {
        "type": "object",
        "required": ["payload"],
        "properties": {
            "payload": {"$ref": REF.format(model="PlexPayload")},
            "thumb": {"type": "string", "format": "binary", "description": "Ignored."},
        },
    }
    return {
        "required": True,
        "description": "Plex's multipart delivery: the JSON payload (fields not listed are "
        "allowed and ignored) and, for some events, a thumbnail.",
        "content": {
            "multipart/form-data": {
                "schema": form,
                "encoding": {"payload": {"contentType": "application/json"}},
            }
        },
    }


def _set_k_maximum(operation: dict[str, Any], max_k: int) -> None:
    for param in operation.get("parameters", []):
        if param.get("name") == "k" and param.get("in") == "query":
            schema = param["schema"]
            ints = [s for s in schema.get("anyOf", []) if s.get("type") == "integer"]
            (ints[0] if ints else schema)["maximum"] = max_k


def build_document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The app's OpenAPI document (made once, then cached on the app)."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(FeedbackEvent, "validation"), (PlexPayload, "validation")], ref_template=REF
    )
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    paths = doc["paths"]
    feedback = paths["/v1/feedback"]["post"]
    feedback["requestBody"] = _feedback_body(settings.max_feedback_batch)
    feedback["responses"]["422"]["content"] = _json(VALIDATION_ERROR)
    feedback["responses"]["400"]["content"] = _json(VALIDATION_ERROR)
    paths["/v1/plex/webhook"]["post"]["requestBody"] = _webhook_body()
    _set_k_maximum(paths["/v1/users/{user}/recommendations"]["get"], settings.max_k)
    for methods in paths.values():
        for method, operation in methods.items():
            responses = operation.setdefault("responses", {})
            responses.setdefault("503", {"description": "The service is starting or stopping."})
            if "requestBody" in operation:
                responses.setdefault("400", {"description": "The body could not be parsed."})
            if method in ("post", "put", "patch"):
                limit = f"Body larger than {settings.max_body_bytes} bytes: nothing was read."
                responses.setdefault("413", {"description": limit})
    app.openapi_schema = doc
    return doc
