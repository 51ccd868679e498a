"""Real output never breaks a job, usage is what the servers were paid for, and failures say
what happened: the engine (local executor) on SQLite and Postgres against the simulator's
hostile modes over real HTTP.

Each test runs one job on a simulator of its own module and compares the job's usage
with what the simulator counted serving it (its metrics are reset before each job)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.engine.conftest import ContextFactory
from ttc_api.services import list_nodes
from ttc_core.engine.runtime import EngineContext
from ttc_core.executor import run_job
from ttc_core.inference import client as client_module
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.models import Job, JobEvent, Node
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import synthetic_problems

PROBLEM = synthetic_problems(1, seed=41, steps=3)[0]
HOSTILE = "sim-gsm8k;output_nul=3;output_surrogates=1;output_invalid_utf8=2;usage_style=negative"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    cfg = SimConfig(base_latency_s=0.001, per_token_latency_s=0.0, reward_latency_s=0.0)
    with SimServer(cfg) as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(database_url: str, sim: SimServer) -> Settings:
    dead = f"http://127.0.0.1:{_closed_port()}"

    def gen(model: str = "sim-gsm8k", **kw: Any) -> EndpointConfig:
        return EndpointConfig(base_url=sim.base_url, model=model, max_concurrency=64, **kw)

    return Settings(
        database_url=database_url,
        endpoints={
            "sim": gen(),
            "hostile": gen(HOSTILE),
            "judge-garbage": gen("sim-gsm8k;garbage_rate=1"),
            "judge-flaky": gen("sim-gsm8k;garbage_rate=0.6"),
            # Refuses n > 1; half of the n=1 requests then answer 500, never retried.
            "fanout": gen(
                "sim-gsm8k;reject_n=true;fail_500_rate=0.5",
                max_retries=0,
                breaker_threshold=1000,
            ),
            "dead": EndpointConfig(base_url=dead + "/v1", model="m", max_retries=1),
            "no-v1": EndpointConfig(base_url=sim.url, model="sim-gsm8k", max_retries=0),
            "sim-prm": EndpointConfig(base_url=sim.url, model="sim-prm", kind="reward"),
            "dead-rm": EndpointConfig(base_url=dead, model="rm", kind="reward", max_retries=1),
        },
        expand_batch_samples=16,
    )


def _run(ctx: EngineContext, sim: SimServer, spec: dict[str, Any]) -> Job:
    sim.reset_metrics()
    body = {"prompt": PROBLEM.question, "reference": PROBLEM.answer, "seed": 7, **spec}
    with ctx.db.transaction() as session:
        job_id = create_job(session, JobSpec.model_validate(body), ctx.settings, tenant="t").id

    async def go() -> None:
        try:
            await run_job(ctx, job_id)
        finally:
            await ctx.aclose()

    asyncio.run(go())
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
    return job


def _nodes(ctx: EngineContext, job: Job) -> list[Node]:
    with ctx.db.session() as session:
        nodes = list(session.scalars(select(Node).where(Node.job_id == job.id)))
        session.expunge_all()
    return nodes


def _events(ctx: EngineContext, job: Job, kind: str) -> list[dict[str, Any]]:
    with ctx.db.session() as session:
        return [
            dict(data)
            for data in session.scalars(
                select(JobEvent.data).where(JobEvent.job_id == job.id, JobEvent.kind == kind)
            )
        ]


def _assert_usage_is_what_the_sim_served(job: Job, sim: SimServer) -> None:
    m = sim.metrics
    answered = sum(
        by_status.get("200", 0)
        for route, by_status in m["requests"].items()
        if route in ("/v1/chat/completions", "/v1/completions", "/pooling", "/classify")
    )
    assert job.requests == answered
    assert job.completion_tokens == m["completion_tokens_total"]
    assert job.prompt_tokens == m["prompt_tokens_total"] + m.get("reward_prompt_tokens_total", 0)


# ------------------------------------------------------------------ hostile output


@pytest.mark.parametrize(
    "spec",
    [
        {"strategy": "best_of_n", "params": {"n": 4}},
        {
            "strategy": "beam_search",
            "params": {"n": 4, "beam_width": 2, "max_depth": 4},
            "prm": {"kind": "prm", "endpoint": "sim-prm"},
        },
    ],
    ids=["best_of_n", "beam_search"],
)
def test_nul_surrogates_and_negative_usage_never_break_a_job(
    database_url: str, sim: SimServer, make_context: ContextFactory, spec: dict[str, Any]
) -> None:
    ctx = make_context(_settings(database_url, sim))
    job = _run(ctx, sim, {**spec, "endpoint": "hostile"})
    assert job.status == "succeeded", job.error
    generated = [n for n in _nodes(ctx, job) if n.parent_id is not None]
    assert generated
    for node in generated:
        assert "\x00" not in node.text
        assert "\ufffd" in node.text  # replaced, visibly
        assert node.meta["sanitized"] == {"nul": 3, "surrogates": 1, "invalid_utf8": 2}
        assert "negative" in node.meta["usage"]["completion_tokens"]
        assert node.completion_tokens > 0  # estimated from the text, not -N
    # Usage is counted (estimated where the server's numbers were absurd).
    assert job.completion_tokens == sum(n.completion_tokens for n in generated)
    assert job.completion_tokens > 0 and job.prompt_tokens > 0
    # And the API shows the text as stored.
    with ctx.db.session() as session:
        page = list_nodes(session, job, parent_id=None, cursor=None, limit=100)
    shown = [n for n in page.data if n.parent_id is not None]
    assert {n.text for n in shown} == {n.text for n in generated}
    assert all(n.meta["sanitized"]["nul"] == 3 for n in shown)
    assert "\ufffd" in page.model_dump_json()


# ------------------------------------------------------------------ unparseable judges


def test_a_judge_that_never_answers_a_value_fails_the_search_in_words(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(_settings(database_url, sim))
    job = _run(
        ctx,
        sim,
        {
            "strategy": "beam_search",
            "endpoint": "sim",
            "params": {"n": 4, "beam_width": 2, "max_depth": 4},
            "prm": {"kind": "llm_judge", "endpoint": "judge-garbage", "samples": 2},
        },
    )
    assert job.status == "failed"
    assert job.error is not None and job.error.startswith("nothing could be scored")
    assert "'judge-garbage'" in job.error and "no value word" in job.error
    trouble = _events(ctx, job, "endpoint_trouble")
    assert trouble and trouble[0]["endpoint"] == "judge-garbage"
    assert trouble[0]["unscorable"] == 4
    _assert_usage_is_what_the_sim_served(job, sim)  # the judge's garbage was paid for


def test_unparseable_judge_replies_score_zero_and_the_search_goes_on(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(_settings(database_url, sim))
    job = _run(
        ctx,
        sim,
        {
            "strategy": "beam_search",
            "endpoint": "sim",
            "params": {"n": 8, "beam_width": 2, "max_depth": 5},
            "prm": {"kind": "llm_judge", "endpoint": "judge-flaky", "samples": 1},
        },
    )
    assert job.status == "succeeded", job.error
    nodes = _nodes(ctx, job)
    unscored = [n for n in nodes if "score_error" in (n.meta or {})]
    scored = [n for n in nodes if n.score is not None and "score_error" not in (n.meta or {})]
    assert unscored and scored
    assert all(n.score == 0.0 and "no value word" in n.meta["score_error"] for n in unscored)
    trouble = _events(ctx, job, "endpoint_trouble")
    assert sum(e["unscorable"] for e in trouble) == len(unscored)
    _assert_usage_is_what_the_sim_served(job, sim)


# ------------------------------------------------------------------ usage


def test_judge_tokens_and_requests_are_counted_exactly(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(_settings(database_url, sim))
    job = _run(
        ctx,
        sim,
        {
            "strategy": "tot_bfs",
            "endpoint": "sim",
            "params": {"k": 3, "breadth": 2, "max_depth": 3},
            "prm": {"kind": "llm_judge", "endpoint": "sim", "samples": 3},
        },
    )
    assert job.status == "succeeded", job.error
    assert sim.metrics["value_choices"] > 0
    node_tokens = sum(n.completion_tokens for n in _nodes(ctx, job))
    assert job.completion_tokens > node_tokens  # the judge's votes are in it
    _assert_usage_is_what_the_sim_served(job, sim)


def test_a_failed_job_reports_what_was_paid(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(_settings(database_url, sim))
    job = _run(
        ctx,
        sim,
        {
            "strategy": "best_of_n",
            "endpoint": "sim",
            "params": {"n": 6},
            "verifier": {"kind": "reward_model", "endpoint": "dead-rm"},
        },
    )
    assert job.status == "failed"
    assert job.error is not None and "connection refused" in job.error
    assert job.requests > 0 and job.completion_tokens > 0  # not 0 and 0
    assert job.node_count == 6
    _assert_usage_is_what_the_sim_served(job, sim)


def test_answered_requests_of_a_failed_fan_out_are_counted(
    database_url: str,
    sim: SimServer,
    make_context: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A limit learnt by an earlier test in this process would skip the refusal.
    monkeypatch.setattr(client_module, "_N_LIMITS", {})
    ctx = make_context(_settings(database_url, sim))
    job = _run(ctx, sim, {"strategy": "best_of_n", "endpoint": "fanout", "params": {"n": 8}})
    answered = sim.metrics["requests"]["/v1/chat/completions"]
    assert answered.get("400") == 1  # n=8 refused, then eight n=1 requests
    assert answered.get("200", 0) + answered.get("500", 0) == 8
    if answered.get("500"):  # one of the run's requests failed: its samples failed
        assert job.failed_nodes == 8
    assert job.requests == answered["200"] >= 1
    _assert_usage_is_what_the_sim_served(job, sim)


# ------------------------------------------------------------------ failures in words


def test_a_dead_endpoint_says_connection_refused(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(_settings(database_url, sim))
    job = _run(ctx, sim, {"strategy": "best_of_n", "endpoint": "dead", "params": {"n": 2}})
    assert job.status == "failed"
    assert job.error is not None
    assert "endpoint 'dead'" in job.error
    assert "connection refused" in job.error and "timeout" not in job.error
    assert job.error.startswith("no sample was generated")


def test_a_base_url_without_v1_says_which_route_answered_404(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(_settings(database_url, sim))
    job = _run(ctx, sim, {"strategy": "best_of_n", "endpoint": "no-v1", "params": {"n": 2}})
    assert job.status == "failed"
    assert job.error is not None and "endpoint 'no-v1'" in job.error
    assert f"POST {sim.url}/chat/completions answered 404: is base_url missing /v1?" in job.error
