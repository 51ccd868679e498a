"""Budgets hold across steps: nothing is dispatched that the budget cannot pay for in
the worst case, and a job that runs out finishes with its best answer so far, naming
the budget that ended it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.engine.conftest import ContextFactory, make_settings
from ttc_core.executor import run_job
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig
from ttc_core.store.models import Job
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("budget", "params", "check"),
    [
        ({"max_requests": 3}, {"n": 64}, lambda j: j.requests == 3 and j.node_count == 48),
        ({"max_nodes": 10}, {"n": 64}, lambda j: j.node_count == 10),
        (
            {"max_tokens": 2048},
            {"n": 64, "max_tokens": 512},
            lambda j: 0 < j.completion_tokens <= 2048 and j.node_count < 64,
        ),
        (
            # A job that would use ~100,000 tokens (1,000 samples of ~100) stopped at 10,000:
            # worst-case reservation means no overshoot at all.
            {"max_tokens": 10_000},
            {"n": 1000, "max_tokens": 256},
            lambda j: 9_000 <= j.completion_tokens <= 10_000 and j.node_count < 1000,
        ),
        (
            {"max_cost": 0.2},
            {"n": 64, "max_tokens": 100},
            lambda j: 0 < j.cost <= 0.2 and j.node_count < 64,
        ),
    ],
    ids=["requests", "nodes", "tokens", "10k-of-100k-tokens", "cost"],
)
def test_budget_ends_the_job_with_its_best_answer(
    database_url: str,
    sim: SimServer,
    make_context: ContextFactory,
    budget: dict[str, Any],
    params: dict[str, Any],
    check: Any,
) -> None:
    settings = make_settings(database_url, sim, expand_batch_samples=16)
    settings.endpoints["sim"] = EndpointConfig(
        base_url=sim.base_url, model="sim-gsm8k", price_per_1k_completion=1.0
    )
    ctx = make_context(settings)
    problem = gsm8k_problems()[1]
    with ctx.db.transaction() as session:
        job_id = create_job(
            session,
            JobSpec.model_validate(
                {
                    "strategy": "best_of_n",
                    "endpoint": "sim",
                    "prompt": problem.question,
                    "params": params,
                    "reference": problem.answer,
                    "budget": budget,
                    "seed": 5,
                }
            ),
            settings,
            tenant="t",
        ).id

    async def go() -> None:
        try:
            await run_job(ctx, job_id)
        finally:
            await ctx.aclose()

    asyncio.run(go())
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.status == "succeeded", job.error
        assert check(job), (job.requests, job.node_count, job.completion_tokens, job.cost)
        assert job.result is not None
        assert job.result["ended_by"] == "budget: " + next(iter(budget)).removeprefix("max_")
        assert job.result["answer"] is not None
