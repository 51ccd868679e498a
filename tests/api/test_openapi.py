"""The OpenAPI document is valid, complete and accurate: every ``/v1`` operation lists the
errors it can answer as problem+json, and every body it takes or gives has an example
that validates against its own schema."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from ttc_api.app import create_app
from ttc_api.problems import PROBLEM_MEDIA_TYPE
from ttc_api.routes.events import EVENTS_DESCRIPTION
from ttc_cli.migrate import upgrade
from ttc_core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BODY_METHODS = {"post", "put", "patch"}
Operation = tuple[str, str, dict[str, Any]]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'ttc.db'}"
    upgrade(url)
    return create_app(Settings(database_url=url, executor="local", auth_enabled=False))


def _request(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ttc") as client:
            return await client.request(method, path, **kwargs)

    return anyio.run(send)


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    """The document as the server sends it (``GET /openapi.json``), not the app object."""
    resp = _request(app, "GET", "/openapi.json")
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


def _operations(document: dict[str, Any]) -> Iterator[Operation]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith("/v1/") and isinstance(operation, dict):
                yield path, method, operation


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    # Component references resolve against the document itself.
    return Draft202012Validator({**schema, "components": document["components"]})


def _examples(document: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    """Examples of a media type entry, or else of the component schema it refers to."""
    found = [e["value"] for e in media.get("examples", {}).values()]
    if "example" in media:
        found.append(media["example"])
    if not found and "$ref" in media.get("schema", {}):
        name = media["schema"]["$ref"].rsplit("/", 1)[-1]
        found = list(document["components"]["schemas"][name].get("examples", []))
    return found


def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert "Problem" in document["components"]["schemas"]


def test_every_operation_documents_its_errors_as_problems(document: dict[str, Any]) -> None:
    missing: list[str] = []
    for path, method, operation in _operations(document):
        name = f"{method.upper()} {path}"
        assert operation.get("summary"), name
        responses = operation["responses"]
        expected = {"401", "413"}
        if "{" in path:
            expected.add("404")
        if operation.get("parameters") or "requestBody" in operation:
            expected.add("422")
        if method in BODY_METHODS:
            expected.add("415")
        if "requestBody" in operation:
            expected.add("400")
        missing += [f"{name}: {code}" for code in sorted(expected - set(responses))]
        for status, response in responses.items():
            if int(status) < 400:
                continue
            content = response.get("content", {})
            assert list(content) == [PROBLEM_MEDIA_TYPE], f"{name} {status}: {list(content)}"
            media = content[PROBLEM_MEDIA_TYPE]
            assert media["schema"] == {"$ref": "#/components/schemas/Problem"}, name
            examples = _examples(document, media)
            assert examples, f"{name} {status}: no example"
            problem = _validator(document, media["schema"])
            for example in examples:
                problem.validate(example)
                assert example["status"] == int(status), f"{name} {status}"
            if status == "429":
                assert "Retry-After" in response.get("headers", {}), name
    assert not missing, missing


def test_every_body_has_a_valid_example(document: dict[str, Any]) -> None:
    missing: list[str] = []
    for path, method, operation in _operations(document):
        name = f"{method.upper()} {path}"
        bodies: list[tuple[str, dict[str, Any]]] = []
        if "requestBody" in operation:
            bodies.append(("request", operation["requestBody"]["content"]["application/json"]))
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get("application/json")
            if int(status) < 400 and media is not None and media.get("schema"):
                bodies.append((status, media))
        for label, media in bodies:
            examples = _examples(document, media)
            if not examples:
                missing.append(f"{name} {label}")
            schema = _validator(document, media["schema"])
            for example in examples:
                errors = [e.message for e in schema.iter_errors(example)]
                assert not errors, f"{name} {label}: {errors[:3]}"
    assert not missing, f"no example for: {missing}"


def test_events_route_documents_the_stream_and_every_event_kind(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/jobs/{job_id}/events"]["get"]
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/event-stream"}
    assert content["text/event-stream"]["example"].startswith("retry: 2000\n\nid: 7\n")
    header = [p for p in operation["parameters"] if p["in"] == "header"]
    assert [p["name"] for p in header] == ["Last-Event-ID"]
    # Every kind the engine records is described (a new kind must be documented).
    # Kinds appended directly, and kinds that strategies return in ``Plan.events``.
    pattern = re.compile(
        r'append_event\(\s*session,\s*[\w.]+,\s*"(\w+)"|events(?:\.append\(|=\[)\("(\w+)"', re.S
    )
    kinds = {
        kind
        for source in (ROOT / "ttc_core").rglob("*.py")
        for match in pattern.findall(source.read_text())
        for kind in match
        if kind
    }
    assert {"status_changed", "nodes_added", "step_done", "best_changed", "adaptive_stop"} <= kinds
    undocumented = sorted(k for k in kinds if f"`{k}`" not in EVENTS_DESCRIPTION)
    assert not undocumented, undocumented


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/plain", b"n=4"), ("application/x-www-form-urlencoded", b"n=4"), (None, b"{}")],
)
def test_bodies_that_are_not_json_are_415(
    app: FastAPI, content_type: str | None, body: bytes
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    resp = _request(app, "POST", "/v1/jobs", content=body, headers=headers)
    assert resp.status_code == 415
    assert resp.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert resp.json()["field"] == "Content-Type"


def test_json_bodies_and_empty_posts_pass_the_media_type_check(app: FastAPI) -> None:
    typed = {"content-type": "application/json; charset=utf-8"}
    resp = _request(app, "POST", "/v1/admin/keys", content=b'{"tenant": 1}', headers=typed)
    assert resp.status_code == 422  # past the check, refused by validation
    assert resp.json()["field"] == "tenant"
    assert _request(app, "POST", "/v1/jobs/nope/cancel").status_code == 404
