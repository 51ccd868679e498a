"""Acceptance of the expansion cache (issue 17), on SQLite and Postgres with the simulator
over HTTP: the same job submitted twice (same seed) makes no generation request the second
time (counted at the simulator) and grows the same tree with the same answer; with the
cache off it makes the same requests as the first; another tenant does not see the
first tenant's entries unless the operator shares them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.engine.conftest import ContextFactory
from tests.engine.tree_compare import job_of, tree_by_position
from ttc_core.engine.runtime import EngineContext
from ttc_core.executor import run_job
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems, synthetic_problems

GSM8K = gsm8k_problems()[1]
STEPWISE = synthetic_problems(1, seed=5, steps=3)[0]

JOBS: dict[str, dict[str, Any]] = {
    "best_of_n": {
        "strategy": "best_of_n",
        "prompt": GSM8K.question,
        "params": {"n": 12, "max_tokens": 256},
        "verifier": {"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"},
        "reference": GSM8K.answer,
    },
    "beam_search": {
        "strategy": "beam_search",
        "prompt": STEPWISE.question,
        "params": {"n": 6, "beam_width": 2, "max_depth": 4, "max_tokens": 64},
        "prm": {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"},
        "reference": STEPWISE.answer,
    },
}


def settings_for(database_url: str, sim: SimServer, **kw: Any) -> Settings:
    return Settings(
        database_url=database_url,
        endpoints={
            # At most 4 samples a request: a job's expansions are several requests each.
            "sim": EndpointConfig(
                base_url=sim.base_url, model="sim-gsm8k", max_concurrency=64, max_n_per_request=4
            ),
            "sim-prm": EndpointConfig(base_url=sim.url, model="sim-prm", kind="reward"),
        },
        **kw,
    )


def submit(ctx: Any, settings: Settings, body: dict[str, Any], tenant: str = "t1") -> str:
    spec = JobSpec.model_validate({"endpoint": "sim", **body})
    with ctx.db.transaction() as session:
        return create_job(session, spec, settings, tenant=tenant).id


async def generation_requests(sim: SimServer) -> int:
    await asyncio.sleep(0.05)  # the simulator counts a request as it finishes answering
    return int(sim.metrics["requests_total"])


async def run(ctx: Any, sim: SimServer, job_id: str) -> int:
    """Run a job to its end; returns the generation requests the simulator received."""
    before = await generation_requests(sim)
    await run_job(ctx, job_id)
    return await generation_requests(sim) - before


def scenario(test: Callable[[], Awaitable[None]], *contexts: EngineContext) -> None:
    async def go() -> None:
        try:
            await test()
        finally:
            for ctx in contexts:
                await ctx.aclose()

    asyncio.run(go())


@pytest.mark.parametrize("kind", list(JOBS))
def test_same_job_twice_is_served_by_the_cache(
    kind: str, database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    settings = settings_for(database_url, sim)
    ctx = make_context(settings)
    body = {**JOBS[kind], "seed": 1234}
    scenario(lambda: same_job_twice(ctx, settings, sim, body), ctx)


async def same_job_twice(
    ctx: Any, settings: Settings, sim: SimServer, body: dict[str, Any]
) -> None:
    first = submit(ctx, settings, body)
    first_requests = await run(ctx, sim, first)
    assert first_requests > 1

    second = submit(ctx, settings, body)
    assert await run(ctx, sim, second) == 0  # nothing reached the server
    a, b = job_of(ctx, first), job_of(ctx, second)
    assert b.status == a.status == "succeeded"
    assert tree_by_position(ctx, second) == tree_by_position(ctx, first)
    assert (b.result or {})["answer"] == (a.result or {})["answer"]
    assert (b.result or {})["score"] == (a.result or {})["score"]
    # Usage: no generation paid, all of it saved (the first job's tokens and requests);
    # the step scorer's calls (a job's requests too) are made again: scoring is not cached.
    assert (b.prompt_tokens, b.completion_tokens) == (0, 0)
    assert b.requests == a.requests - first_requests
    assert b.cache_hits == a.node_count == b.node_count
    assert b.cache_completion_tokens == a.completion_tokens
    assert b.cache_prompt_tokens == a.prompt_tokens
    assert b.cache_requests == first_requests
    assert a.cache_hits == a.cache_requests == 0

    # The cache off: the same requests as the first run, the same tree.
    third = submit(ctx, settings, {**body, "cache": "off"})
    assert await run(ctx, sim, third) == first_requests
    assert tree_by_position(ctx, third) == tree_by_position(ctx, first)
    assert job_of(ctx, third).cache_hits == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tenants_do_not_share_unless_the_operator_says_so(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    body = {**JOBS["best_of_n"], "params": {"n": 4, "max_tokens": 256}, "seed": 99}
    settings = settings_for(database_url, sim)
    shared = settings_for(database_url, sim, expansion_cache_scope="shared")
    off = settings_for(database_url, sim, expansion_cache_enabled=False)
    own, both, none = make_context(settings), make_context(shared), make_context(off)

    async def test() -> None:
        assert await run(own, sim, submit(own, settings, body, tenant="a")) > 0
        assert await run(own, sim, submit(own, settings, body, tenant="b")) > 0  # b's own
        # A shared scope starts empty; then a's samples serve b.
        assert await run(both, sim, submit(both, shared, body, tenant="a")) > 0
        assert await run(both, sim, submit(both, shared, body, tenant="b")) == 0
        # The operator's switch: no job reads the cache.
        assert await run(none, sim, submit(none, off, body, tenant="a")) > 0

    scenario(test, own, both, none)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_smaller_job_is_served_by_a_larger_ones_samples(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    """n is no part of the key: the first 4 samples of a 12-sample job are a 4-sample job."""
    settings = settings_for(database_url, sim)
    ctx = make_context(settings)
    body = {**JOBS["best_of_n"], "seed": 7}

    async def test() -> None:
        big = submit(ctx, settings, body)
        await run(ctx, sim, big)
        small = submit(ctx, settings, {**body, "params": {"n": 4, "max_tokens": 256}})
        assert await run(ctx, sim, small) == 0
        big_tree, small_tree = tree_by_position(ctx, big), tree_by_position(ctx, small)
        assert len(small_tree) == 5
        assert all(big_tree[address] == node for address, node in small_tree.items())
        # A job without a seed draws its own samples and leaves the cache alone.
        unseeded = submit(ctx, settings, {k: v for k, v in body.items() if k != "seed"})
        assert job_of(ctx, unseeded).cache == "off"
        assert await run(ctx, sim, unseeded) > 0

    scenario(test, ctx)
