"""ttc against llama.cpp's own ``llama-server`` (built from source, a tiny random GGUF).

First what the server does (so that a new llama.cpp release that changes it fails here,
not in production): ``n`` over ``--parallel`` refused with the limit in words, OpenAI
usage that counts one choice of ``n``, a chat prefill echoed in ``content``. Then ttc on
it, through the engine (local executor, SQLite): best-of-N with n=16 (16 samples, distinct
seeds, the breaker closed), usage equal to the server's own ``/metrics``, step search
with multi-step paths, and budget forcing on a Qwen3-style thinking template.

Runs with ``TTC_CONFORMANCE=1`` (``make conformance``); skipped otherwise.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conformance.llamacpp_fixtures import (
    LlamaServer,
    llamacpp_server,
    llamacpp_thinking_server,
)
from ttc_cli.migrate import upgrade
from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.errors import RejectedRequestError
from ttc_core.executor import run_job
from ttc_core.inference.client import GenerationRequest, n_limit
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Job, Node
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer

__all__ = ["llamacpp_server", "llamacpp_thinking_server"]  # fixtures, used by name

PREDICTED = "llamacpp:tokens_predicted_total"
QUESTION = "Natalia sold clips to 48 of her friends in April. How many clips did she sell?"
MESSAGES = [{"role": "user", "content": QUESTION}]
#: Random weights write garbage: any text is the answer (the point is the protocol).
ANY_TEXT = {"kind": "regex", "pattern": "(?s)(.+)"}


# ----------------------------------------------------------------- the server as it is


def _post(server: LlamaServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.root + path, json={"model": server.model, **body}, timeout=120)


def test_n_over_parallel_is_refused_with_the_limit(llamacpp_server: LlamaServer) -> None:
    resp = _post(llamacpp_server, "/v1/chat/completions", {"messages": MESSAGES, "n": 16})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert "param" not in error
    assert "Value must be between 1 <= value <= 4, but got 16" in error["message"]
    exc = RejectedRequestError("HTTP 400", status=400, body=resp.text)
    assert n_limit(exc) == llamacpp_server.parallel


def test_openai_usage_counts_one_choice_the_native_route_each(
    llamacpp_server: LlamaServer,
) -> None:
    """Why ttc generates on ``/completion`` on llama.cpp: its OpenAI usage for n=4 is the
    first sample's; the native results each carry their own count, which add up to what
    ``/metrics`` counted."""
    sampling = {"n": 4, "seed": 5, "temperature": 1.0, "ignore_eos": True}
    before = llamacpp_server.metrics()[PREDICTED]
    resp = _post(
        llamacpp_server,
        "/v1/chat/completions",
        {"messages": MESSAGES, "max_tokens": 20, **sampling},
    )
    assert resp.status_code == 200, resp.text
    generated = llamacpp_server.metrics()[PREDICTED] - before
    assert len(resp.json()["choices"]) == 4
    assert generated == 4 * 20
    assert resp.json()["usage"]["completion_tokens"] == 20  # one choice of four

    rendered = _post(llamacpp_server, "/apply-template", {"messages": MESSAGES}).json()["prompt"]
    before = llamacpp_server.metrics()[PREDICTED]
    native = _post(
        llamacpp_server, "/completion", {"prompt": rendered, "n_predict": 20, **sampling}
    )
    assert native.status_code == 200, native.text
    results = native.json()
    assert isinstance(results, list) and len(results) == 4
    assert sum(r["tokens_predicted"] for r in results) == (
        llamacpp_server.metrics()[PREDICTED] - before
    )


def test_a_chat_prefill_is_echoed_in_content(llamacpp_server: LlamaServer) -> None:
    prefill = "Step 1: 48 / 2 = 24.\n\n"
    resp = _post(
        llamacpp_server,
        "/v1/chat/completions",
        {
            "messages": [*MESSAGES, {"role": "assistant", "content": prefill}],
            "max_tokens": 8,
            "seed": 1,
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"].startswith(prefill)


def test_thinking_prefill_on_the_chat_route(llamacpp_thinking_server: LlamaServer) -> None:
    """A thought continued through the chat route with ``enable_thinking``: refused by
    some builds (400 "Assistant response prefill is incompatible with enable_thinking"),
    parsed out of ``content`` into ``reasoning_content`` by others, echoed back with the
    prefill in ``content`` by others (the vendored build here); in no case can ttc force
    a thought there, so it continues thoughts on ``/completion`` instead."""
    resp = _post(
        llamacpp_thinking_server,
        "/v1/chat/completions",
        {
            "messages": [*MESSAGES, {"role": "assistant", "content": "<think>\nLet me see"}],
            "max_tokens": 8,
            "seed": 1,
            "chat_template_kwargs": {"enable_thinking": True},
        },
    )
    if resp.status_code == 400:
        assert "prefill" in resp.text and "enable_thinking" in resp.text
        return
    assert resp.status_code == 200, resp.text
    message = resp.json()["choices"][0]["message"]
    content = message.get("content") or ""
    if message.get("reasoning_content"):  # parsed: the thought left the content
        assert "<think>" not in content
    else:  # echoed: the content starts with the prefill, as ttc_core.inference strips it
        assert content.startswith("<think>\nLet me see"), content[:80]


# ----------------------------------------------------------------- ttc on the server


def _endpoint(server: LlamaServer, **fields: Any) -> EndpointConfig:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "model": server.model,
        "server": "llamacpp",
        "max_concurrency": 8,
        "timeout_s": 120.0,
        "max_n_per_request": 16,
        "breaker_threshold": 3,
    }
    return EndpointConfig(**{**values, **fields})


@pytest.fixture(scope="module")
def sim_prm() -> Any:
    """The simulator's PRM (JSON protocol) as a simple step scorer for llama.cpp's steps."""
    with SimServer(SimConfig(base_latency_s=0.0, per_token_latency_s=0.0)) as sim:
        yield sim


def _context(tmp_path: Path, endpoints: dict[str, EndpointConfig]) -> EngineContext:
    url = f"sqlite:///{tmp_path / 'ttc.db'}"
    upgrade(url)
    settings = Settings(database_url=url, endpoints=endpoints)
    return EngineContext(settings=settings, db=Database(url), http=make_http_client())


def _run_job(ctx: EngineContext, spec: dict[str, Any]) -> tuple[Job, list[Node]]:
    with ctx.db.transaction() as session:
        job_id = create_job(session, JobSpec.model_validate(spec), ctx.settings, tenant="t").id

    async def main() -> None:
        try:
            await run_job(ctx, job_id)
        finally:
            await ctx.aclose()

    asyncio.run(main())
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        nodes = list(session.scalars(select(Node).where(Node.job_id == job_id)))
        session.expunge_all()
    return job, nodes


def _said_why(job: Job) -> None:
    """A job that failed says why in words (never a bare exception class)."""
    if job.status != "succeeded":
        assert job.status == "failed" and job.error and " " in job.error, job.error


def test_n16_client_samples_have_distinct_seeds_and_the_breaker_stays_closed(
    llamacpp_server: LlamaServer,
) -> None:
    from ttc_core.inference.client import InferenceClient
    from ttc_core.inference.limiter import LocalLimiter

    ep = _endpoint(llamacpp_server)
    before = llamacpp_server.metrics()[PREDICTED]

    async def main() -> Any:
        async with httpx.AsyncClient() as http:
            client = InferenceClient("llama-n16", ep, http, LocalLimiter())
            req = GenerationRequest(n=16, messages=MESSAGES, seed=1000, max_tokens=12)
            gen = await client.generate(req)
            again = await client.generate(req)
            return client, gen, again

    client, gen, again = asyncio.run(main())
    assert [c.seed for c in gen.choices] == list(range(1000, 1016))
    assert [c.index for c in gen.choices] == list(range(16))
    assert len({c.text for c in gen.choices}) >= 14  # random weights, distinct seeds
    assert gen.requests == 4 and again.requests == 4  # n=4 each, as --parallel allows
    assert client.max_n == llamacpp_server.parallel
    assert client.breaker.failures == 0 and client.breaker.openings == 0
    assert client.failed_attempts == 0
    # same seeds, same samples: sample i is seeded seed + i whatever the split
    assert [c.text for c in again.choices] == [c.text for c in gen.choices]
    assert sum(c.completion_tokens for g in (gen, again) for c in g.choices) == (
        llamacpp_server.metrics()[PREDICTED] - before
    )


def test_best_of_n_16_on_llamacpp(llamacpp_server: LlamaServer, tmp_path: Path) -> None:
    ctx = _context(tmp_path, {"llama": _endpoint(llamacpp_server)})
    before = llamacpp_server.metrics()[PREDICTED]
    job, nodes = _run_job(
        ctx,
        {
            "strategy": "best_of_n",
            "endpoint": "llama",
            "prompt": QUESTION,
            "params": {"n": 16, "max_tokens": 24},
            "verifier": ANY_TEXT,
            "reference": "72",  # best_of_n ranks by score: a reference to score against
            "seed": 3,
        },
    )
    generated = llamacpp_server.metrics()[PREDICTED] - before
    _said_why(job)
    samples = [n for n in nodes if n.role == "sample"]
    assert len(samples) == 16
    assert len({n.seed for n in samples}) == 16
    assert all(n.status == "done" for n in samples)
    client = ctx.inference("llama")
    assert client.breaker.openings == 0 and client.failed_attempts == 0
    # what the job was charged is what the server generated, exactly
    assert job.completion_tokens == sum(n.completion_tokens for n in nodes) == generated
    assert job.requests == 4


def test_beam_search_on_llamacpp_grows_multi_step_paths(
    llamacpp_server: LlamaServer, sim_prm: SimServer, tmp_path: Path
) -> None:
    ctx = _context(
        tmp_path,
        {
            "llama": _endpoint(llamacpp_server),
            "prm": EndpointConfig(base_url=sim_prm.url, model="sim-prm", kind="reward"),
        },
    )
    before = llamacpp_server.metrics()[PREDICTED]
    job, nodes = _run_job(
        ctx,
        {
            "strategy": "beam_search",
            "endpoint": "llama",
            "prompt": QUESTION,
            "params": {"n": 4, "beam_width": 2, "max_depth": 3, "max_tokens": 16},
            "prm": {"kind": "prm", "endpoint": "prm", "protocol": "json"},
            "seed": 5,
        },
    )
    generated = llamacpp_server.metrics()[PREDICTED] - before
    _said_why(job)
    steps = [n for n in nodes if n.role == "step"]
    assert max(n.depth for n in steps) >= 2, [(n.depth, n.text) for n in steps]
    # a step is only its new text: never the path above it again (llama.cpp's chat route
    # would echo it)
    by_id = {n.id: n for n in nodes}
    for node in steps:
        parent = by_id.get(node.parent_id or "")
        if parent is not None and parent.role == "step" and parent.text:
            assert not node.text.startswith(parent.text + "\n\n")
    assert job.completion_tokens == generated


def test_think_with_budget_forcing_on_a_thinking_template(
    llamacpp_thinking_server: LlamaServer, tmp_path: Path
) -> None:
    ep = _endpoint(llamacpp_thinking_server, reasoning={"enable_param": "enable_thinking"})
    ctx = _context(tmp_path, {"llama": ep})
    before = llamacpp_thinking_server.metrics()[PREDICTED]
    job, nodes = _run_job(
        ctx,
        {
            "strategy": "think",
            "endpoint": "llama",
            "prompt": QUESTION,
            "params": {"max_tokens": 16},
            "verifier": ANY_TEXT,
            "thinking": {"min_tokens": 40, "max_tokens": 60, "max_forcings": 4},
            "seed": 9,
        },
    )
    generated = llamacpp_thinking_server.metrics()[PREDICTED] - before
    _said_why(job)
    thoughts = [n for n in nodes if n.role == "think"]
    answers = [n for n in nodes if n.role == "sample"]
    assert thoughts and answers, [(n.role, n.status, n.text) for n in nodes]
    thought = thoughts[0]
    assert thought.completion_tokens <= 60
    # forced (the force word inside) unless the model thought past the minimum by itself
    assert (thought.meta or {}).get("forcings", 0) >= 1 or thought.completion_tokens >= 40
    assert answers[0].parent_id == thought.id
    assert job.completion_tokens == generated
