"""The OpenAPI schema says which errors each operation answers, in the shape we send them.

FastAPI documents only 200 and a 422 body (`{"detail": …}`) we never send; every error leaves
through one handler (api/web/errors.py) as `{"error": {"code", "message", "details"}}`. This
adds that body under `ErrorBody` and the statuses an operation can answer, leaving any response
a route documents itself untouched. It also says that request text never carries U+0000.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

API_PREFIX = "/api/v1"
# Operations answered without a bearer token (the rest all answer 401 and 403).
PUBLIC_OPERATIONS = {("post", "/api/v1/auth/token")}
# Statuses beyond the common ones, by operation.
EXTRA_STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/v1/attachments"): (413,),
    ("get", "/ready"): (503,),
}
DESCRIPTIONS = {
    400: "The body could not be read (not JSON, not UTF-8, a broken multipart form).",
    401: "Missing, invalid, expired or revoked bearer token.",
    403: "The analyst's role does not allow this operation.",
    404: "The resource does not exist (or is not visible to this analyst).",
    409: "The resource's current state does not allow this change.",
    413: "The file is larger than MAX_ATTACHMENT_BYTES.",
    422: "The request is malformed: parameters or body out of their bounds or types.",
    503: "A dependency (database, Redis, Rasa) is not reachable.",
}
ERROR_BODY: dict[str, Any] = {
    "title": "ErrorBody",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
_REF = {"$ref": "#/components/schemas/ErrorBody"}
# Request text never carries U+0000 (refused with a 422: api/web/inputs.py).
NO_NUL = "^[^\\x00]*$"
_METHODS = {"get", "post", "put", "patch", "delete"}


def statuses_for(method: str, path: str, *, has_body: bool = False) -> tuple[int, ...]:
    """The error statuses documented for one operation."""
    extra = EXTRA_STATUSES.get((method, path), ()) + ((400,) if has_body else ())
    if not path.startswith(API_PREFIX):
        return extra
    if (method, path) in PUBLIC_OPERATIONS:
        return (422, *extra)
    return (401, 403, 404, 409, 422, *extra)


def _forbid_nul(node: Any, components: dict[str, Any], seen: set[str]) -> None:
    """Give every free-text string of a request schema the NO_NUL pattern."""
    if isinstance(node, list):
        for item in node:
            _forbid_nul(item, components, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        if name not in seen and name in components:
            seen.add(name)
            _forbid_nul(components[name], components, seen)
        return
    constrained = {"pattern", "enum", "const", "format", "contentMediaType"}
    if node.get("type") == "string" and not constrained & node.keys():
        node["pattern"] = NO_NUL
    for key in ("properties",):
        for child in (node.get(key) or {}).values():
            _forbid_nul(child, components, seen)
    for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
        if key in node:
            _forbid_nul(node[key], components, seen)


def add_error_responses(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ERROR_BODY
    seen: set[str] = set()
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            if path.startswith(API_PREFIX):
                for parameter in operation.get("parameters", []):
                    _forbid_nul(parameter.get("schema"), components, seen)
                for content in operation.get("requestBody", {}).get("content", {}).values():
                    _forbid_nul(content.get("schema"), components, seen)
            responses = operation.setdefault("responses", {})
            has_body = "requestBody" in operation
            for status in statuses_for(method, path, has_body=has_body):
                # FastAPI's own 422 describes a body we never send: it is replaced.
                if str(status) in responses and status != 422:
                    continue
                responses[str(status)] = {
                    "description": DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": _REF}},
                }
    return schema


def install_error_responses(app: FastAPI) -> None:
    """Make `app.openapi()` (and /openapi.json, /docs) include the error responses."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_error_responses(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
