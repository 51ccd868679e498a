"""The OpenAI routes in the OpenAPI document: their errors in OpenAI's shape (not
problem+json), the statuses the SDKs map to their classes, and the stream they may answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ttc_api.app import create_app
from ttc_api.openai_compat.errors import is_openai_path
from ttc_core.settings import Settings

ERROR_REF = "#/components/schemas/OpenAIErrorBody"


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    db = Path(tmp_path_factory.mktemp("doc")) / "doc.db"
    app = create_app(Settings(database_url=f"sqlite:///{db}"))
    return app.openapi()


def test_openai_operations_document_openai_errors(document: dict[str, Any]) -> None:
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        if is_openai_path(path)
        for method, op in item.items()
    ]
    paths = {path for path, _, _ in operations}
    assert {"/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/responses"} <= paths
    assert not any(p.startswith("/v1/batches") for p in paths)  # not served: a 404
    for path, method, op in operations:
        name = f"{method.upper()} {path}"
        assert op.get("summary"), name
        responses = op["responses"]
        assert {"400", "401", "404", "413", "415"} <= set(responses), name
        for status, response in responses.items():
            if int(status) < 400 or status == "422":
                continue
            content = response["content"]
            assert list(content) == ["application/json"], f"{name} {status}"
            assert content["application/json"]["schema"] == {"$ref": ERROR_REF}, name
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/responses"):
        responses = document["paths"][path]["post"]["responses"]
        assert {"409", "429", "500"} <= set(responses)
        assert "Retry-After" in responses["429"]["headers"]
        assert "text/event-stream" in responses["200"]["content"]
