"""The OpenAPI document, completed where FastAPI's generator cannot know what we mean.

Two corrections, applied once when the document is first built:

- FastAPI files the schema of every extra response under the route's own media type
  (``application/json``), so error bodies would read as JSON rather than
  ``application/problem+json``. Each error response keeps only its problem+json entry,
  with the ``Problem`` schema.
- Some errors come from the middleware and body parsing, before any route runs, so no
  route declares them: 413 (``BodySizeLimit``, any ``/v1`` request), 415
  (``JSONBodiesOnly``, a ``/v1`` POST/PUT/PATCH with a body that is not JSON) and 400 (a
  body that cannot be read). They are added here to every operation they apply to.

And one repair: FastAPI drops every ``None`` from the document (``exclude_none``),
examples included, so an example of a required nullable field (``"error": null``) would
no longer match its own schema. The nulls are put back where the schema requires them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ttc_api.problems import PROBLEM_DOCS, PROBLEM_MEDIA_TYPE

PROBLEM_REF = "#/components/schemas/Problem"
_BODY_METHODS = {"post", "put", "patch"}


def _problem_entry(code: int) -> dict[str, Any]:
    text, example = PROBLEM_DOCS[code]
    return {
        "description": text,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}, "example": example}},
    }


def _transport_problems(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    if not path.startswith("/v1/"):
        return []
    codes = [413]
    if method in _BODY_METHODS:
        codes.append(415)
    if "requestBody" in operation:
        codes.append(400)
    return codes


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _nullable(schema: dict[str, Any]) -> bool:
    options = [schema, *schema.get("anyOf", [])]
    return any(option.get("type") == "null" for option in options)


def _restore_nulls(value: Any, schema: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Put back the required nullable fields that ``exclude_none`` removed from ``value``."""
    schema = _resolve(schema, schemas)
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            _restore_nulls(value, option, schemas)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value and _nullable(_resolve(properties.get(name, {}), schemas)):
                value[name] = None
        for name, item in value.items():
            if name in properties:
                _restore_nulls(item, properties[name], schemas)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _restore_nulls(item, schema["items"], schemas)


def _repair_examples(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    for schema in schemas.values():
        for example in schema.get("examples", []):
            _restore_nulls(example, schema, schemas)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            bodies = [operation.get("requestBody", {}), *operation.get("responses", {}).values()]
            for body in bodies:
                for media in body.get("content", {}).values():
                    schema = media.get("schema")
                    if not schema:
                        continue
                    named = list(media.get("examples", {}).values())
                    examples = [e["value"] for e in named if "value" in e]
                    examples += [media["example"]] if "example" in media else []
                    for example in examples:
                        _restore_nulls(example, schema, schemas)


def complete_document(document: dict[str, Any]) -> dict[str, Any]:
    """Apply the corrections to a generated document (in place; returned for chaining)."""
    for path, path_item in document.get("paths", {}).items():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            for code in _transport_problems(path, method, operation):
                responses.setdefault(str(code), _problem_entry(code))
            for status, response in responses.items():
                content = response.get("content", {})
                if not status.isdigit() or int(status) < 400 or PROBLEM_MEDIA_TYPE not in content:
                    continue
                json_entry = content.pop("application/json", {})
                if "schema" in json_entry:
                    content[PROBLEM_MEDIA_TYPE]["schema"] = json_entry["schema"]
    _repair_examples(document)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json`` (built on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_document(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                    servers=app.servers,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
