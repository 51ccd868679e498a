"""The front door's pure parts: model names, field -> parameter names, the stream's
pieces, and the middleware that puts problem+json errors in OpenAI's shape."""

from __future__ import annotations

import anyio
import httpx
import pytest
from fastapi import FastAPI

from ttc_api.openai_compat.errors import OpenAIError, OpenAIErrors, openai_error_response
from ttc_api.openai_compat.mapping import Standard, job_request, model_ids, resolve_model
from ttc_api.openai_compat.options import TTCOptions
from ttc_api.openai_compat.streaming import pieces
from ttc_api.problems import install_problem_handlers
from ttc_core.errors import LimitError, QuotaError
from ttc_core.service.submission import ChatMessage
from ttc_core.settings import Settings

SETTINGS = Settings(database_url="sqlite://")
HELLO = [ChatMessage(role="user", content="hello")]


def test_model_names() -> None:
    ids = model_ids(SETTINGS)
    assert ids[0] == "sim" and "self_consistency@sim" in ids and "sample@sim" not in ids
    assert all(not i.startswith(("sim-rm", "sim-prm")) for i in ids)
    assert resolve_model("beam_search@sim", SETTINGS).strategy == "beam_search"
    plain = resolve_model("sim", SETTINGS)
    assert (plain.strategy, plain.endpoint) == ("sample", "sim")
    for unknown in ("sim-rm", "nope@sim", "self_consistency@nowhere", "@sim", ""):
        with pytest.raises(OpenAIError) as caught:
            resolve_model(unknown, SETTINGS)
        assert caught.value.status == 404 and caught.value.code == "model_not_found"


def test_standard_fields_map_and_ttc_params_win() -> None:
    ref = resolve_model("self_consistency@sim", SETTINGS)
    standard = Standard(
        temperature=0.3, top_p=0.9, max_tokens=(99, "max_completion_tokens"), stop="END", n=3
    )
    options = TTCOptions(params={"n": 16, "top_p": 0.5}, seed=7)
    job = job_request(ref, options, standard, messages=HELLO)
    assert job.spec.params == {
        "temperature": 0.3,
        "max_tokens": 99,
        "stop": ["END"],
        "n": 16,
        "top_p": 0.5,
    }
    assert job.choices == 3 and job.spec.seed == 7
    assert job.param_for("params.max_tokens") == "max_completion_tokens"
    assert job.param_for("params.top_p") == "ttc.params.top_p"  # set by ttc.params
    assert job.param_for("params.n") == "ttc.params.n"
    assert job.param_for("verifier.regex.pattern") == "ttc.verifier.regex.pattern"
    assert job.param_for("endpoint") == "model"
    assert job.param_for("messages") == "messages"


def test_plain_endpoint_n_is_samples_and_effort_is_thinking() -> None:
    ref = resolve_model("sim", SETTINGS)
    job = job_request(
        ref, None, Standard(n=2, seed=5, reasoning_effort="low"), prompt="hi", prompt_param="prompt"
    )
    assert job.spec.params == {"n": 2} and job.param_for("params.n") == "n"
    assert job.spec.seed == 5 and job.param_for("seed") == "seed"
    assert job.spec.thinking is not None and job.spec.thinking.effort == "low"
    assert job.param_for("thinking.effort") == "reasoning_effort"
    assert job.param_for("prompt") == "prompt"


@pytest.mark.parametrize(
    "text", ["", "one", "  lead and trail  ", "a\n\nb c d e f g h i", "x " * 41]
)
def test_pieces_join_back(text: str) -> None:
    assert "".join(pieces(text)) == text


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_exception_handler(OpenAIError, openai_error_response)
    app.add_middleware(OpenAIErrors)

    @app.get("/v1/models")
    def limit() -> None:
        raise LimitError("n=99 is over this server's limit of 64", field="params.n")

    @app.get("/v1/chat/completions")
    def quota() -> None:
        raise QuotaError("too many", retry_after=7)

    @app.get("/v1/jobs")
    def native() -> None:
        raise LimitError("n too big", field="params.n")

    return app


def _get(app: FastAPI, path: str) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ttc") as client:
            return await client.get(path)

    return anyio.run(send)


def test_problems_on_openai_paths_become_openai_errors() -> None:
    app = _app()
    bad = _get(app, "/v1/models")
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/json"
    assert bad.json() == {
        "error": {
            "message": "n=99 is over this server's limit of 64",
            "type": "invalid_request_error",
            "param": "params.n",
            "code": None,
        }
    }
    limited = _get(app, "/v1/chat/completions")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    missing = _get(app, "/v1/files")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    # ttc's own routes keep problem+json.
    native = _get(app, "/v1/jobs")
    assert native.status_code == 422
    assert native.headers["content-type"] == "application/problem+json"
    assert int(native.headers["content-length"]) == len(native.content)
