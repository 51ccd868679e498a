"""Extended thinking through the whole engine (the local executor, SQLite and Postgres, the
simulated model over HTTP): thoughts and answers stored as separate nodes, thinking tokens
counted apart and capped, best-of-N composing with thinking, and the accuracy curve.

The curve test: for each minimum thinking length, every job's chance of a right answer is
the simulator's p(L) at the length L its thought really had (read from the stored node),
so the accuracy of N jobs must lie within 3.5 standard errors (sqrt(sum p(1-p)) / N) of
the mean of those p; and forcing a longer minimum must raise accuracy.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from sqlalchemy import select

from tests.engine.conftest import ContextFactory, make_settings
from ttc_api.services import job_public
from ttc_core.engine.runtime import EngineContext
from ttc_core.executor import run_job
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.store.models import Job, Node
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import synthetic_problems
from ttc_sim.thinking import accuracy_at
from ttc_sim.tokens import count_tokens

CAP = 400


def _run(ctx: EngineContext, job_ids: list[str]) -> None:
    async def run_all() -> None:
        try:
            await asyncio.gather(*(run_job(ctx, job_id) for job_id in job_ids))
        finally:
            await ctx.aclose()

    asyncio.run(run_all())


def _submit(ctx: EngineContext, specs: list[dict[str, Any]]) -> list[str]:
    with ctx.db.transaction() as session:
        return [
            create_job(session, JobSpec.model_validate(s), ctx.settings, tenant="t").id
            for s in specs
        ]


def test_thoughts_and_answers_are_nodes_and_thinking_is_counted_apart(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(make_settings(database_url, sim))
    problems = synthetic_problems(2, seed=21)
    think_id, bon_id = _submit(
        ctx,
        [
            {
                "strategy": "think",
                "endpoint": "sim",
                "prompt": problems[0].question,
                "reference": problems[0].answer,
                "thinking": {"min_tokens": 300, "max_tokens": CAP},
                "seed": 1,
            },
            {
                "strategy": "best_of_n",
                "endpoint": "sim",
                "prompt": problems[1].question,
                "reference": problems[1].answer,
                "params": {"n": 6},
                "thinking": {"min_tokens": 100, "max_tokens": 150},
                "seed": 2,
            },
        ],
    )
    _run(ctx, [think_id, bon_id])
    with ctx.db.session() as session:
        for job_id, samples, cap in ((think_id, 1, CAP), (bon_id, 6, 150)):
            job = session.get(Job, job_id)
            assert job is not None and job.status == "succeeded", job and job.error
            nodes = list(session.scalars(select(Node).where(Node.job_id == job_id)))
            thoughts = [n for n in nodes if n.role == "think"]
            answers = [n for n in nodes if n.role == "sample"]
            assert len(thoughts) == len(answers) == samples
            assert {a.parent_id for a in answers} == {t.id for t in thoughts}
            for t in thoughts:
                assert t.depth == 1 and t.completion_tokens <= cap
                assert t.meta["closed_by"] in ("model", "cap")
                answer = next(a for a in answers if a.parent_id == t.id)
                assert answer.meta["thinking_tokens"] == t.completion_tokens
                assert "<think>" not in answer.text and "ANSWER:" in answer.text
            # thinking tokens are counted apart, and within the completion tokens
            assert job.thinking_tokens == sum(t.completion_tokens for t in thoughts)
            assert job.thinking_tokens <= samples * cap
            assert job.completion_tokens == sum(n.completion_tokens for n in nodes)
            assert job.node_count == 2 * samples
            usage = job_public(job).usage
            assert usage.thinking_tokens == job.thinking_tokens > 0
            # the result is an answer node, its text the answer without the thought
            assert job.result is not None
            chosen = session.get(Node, job.result["node_id"])
            assert chosen is not None and chosen.role == "sample"
            assert job.result["text"] == chosen.text
        think_job = session.get(Job, think_id)
        assert think_job is not None and think_job.thinking is not None
        first = next(
            n
            for n in session.scalars(select(Node).where(Node.job_id == think_id))
            if n.role == "think"
        )
        assert first.completion_tokens >= 300  # the minimum was forced


def test_think_strategy_thinks_without_an_option(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(make_settings(database_url, sim))
    problem = synthetic_problems(1, seed=8)[0]
    (job_id,) = _submit(
        ctx, [{"strategy": "think", "endpoint": "sim", "prompt": problem.question, "seed": 3}]
    )
    _run(ctx, [job_id])
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "succeeded"
        assert job.thinking is not None and job.thinking_tokens > 0
        # the defaults, with the server's cap resolved at submission
        assert (job.thinking["min_tokens"], job.thinking["max_tokens"]) == (0, 8192)
        assert job.result is not None and job.result["answer"] is not None


MINIMUMS = (0, 400, 1200)
CURVE_PROBLEMS = 100


def run_curve(
    ctx: EngineContext, minimums: tuple[int, ...], problems: int, seed: int = 31
) -> dict[int, dict[str, float]]:
    """Per minimum thinking length: accuracy, the curve's prediction at the lengths the
    thoughts really had, its standard error, and the mean thought length."""
    tasks = synthetic_problems(problems, seed=seed)
    jobs: dict[str, int] = {}
    for minimum in minimums:
        specs = [
            {
                "strategy": "think",
                "endpoint": "sim",
                "prompt": p.question,
                "reference": p.answer,
                "thinking": {"min_tokens": minimum, "max_tokens": 4000, "max_forcings": 64},
                "seed": 7_000 + i,
            }
            for i, p in enumerate(tasks)
        ]
        jobs.update(dict.fromkeys(_submit(ctx, specs), minimum))
    _run(ctx, list(jobs))
    cfg = SimConfig()
    out: dict[int, dict[str, float]] = {}
    with ctx.db.session() as session:
        by_job = {
            n.job_id: n
            for n in session.scalars(
                select(Node).where(Node.job_id.in_(list(jobs)), Node.role == "think")
            )
        }
        for minimum in minimums:
            ids = [j for j, m in jobs.items() if m == minimum]
            right, ps, lengths = 0, [], []
            for job in session.scalars(select(Job).where(Job.id.in_(ids))):
                assert job.status == "succeeded", job.error
                right += int(bool((job.result or {}).get("correct")))
                thought = by_job[job.id]
                assert thought.completion_tokens >= minimum
                lengths.append(thought.completion_tokens)
                # the simulator reads its curve at every token of the thought it saw
                ps.append(accuracy_at(count_tokens(thought.text.strip()), cfg))
            n = len(ids)
            out[minimum] = {
                "accuracy": right / n,
                "predicted": sum(ps) / n,
                "se": math.sqrt(sum(p * (1 - p) for p in ps)) / n,
                "mean_thinking_tokens": sum(lengths) / n,
                "problems": n,
            }
    return out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_longer_minimum_thinking_raises_accuracy_along_the_curve(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(make_settings(database_url, sim))
    table = run_curve(ctx, MINIMUMS, CURVE_PROBLEMS)
    for minimum, row in table.items():
        print(minimum, row)
        assert abs(row["accuracy"] - row["predicted"]) <= 3.5 * row["se"], (minimum, row)
    low, high = table[MINIMUMS[0]], table[MINIMUMS[-1]]
    gap_se = math.sqrt(low["se"] ** 2 + high["se"] ** 2)
    assert high["accuracy"] - low["accuracy"] > 2 * gap_se


def test_budget_reserves_the_thinking_cap_per_sample() -> None:
    """A sample that thinks may spend its cap on top of its answer: a token budget plans
    only as many samples as fit at that worst case."""
    from ttc_core.engine.budgets import trim_to_budget
    from ttc_core.search.strategies import Expand, SamplingParams
    from ttc_core.store.models import Job

    job = Job(
        budget={"max_tokens": 10_000},
        completion_tokens=0,
        thinking={"max_tokens": 1500},
    )
    params = SamplingParams(max_tokens=500)
    planned, cut_by = trim_to_budget(job, params, [Expand("root", 20)], None)
    assert [e.k for e in planned] == [5] and cut_by == "max_tokens"  # 10000 // (500 + 1500)
    job.thinking = None
    planned, _ = trim_to_budget(job, params, [Expand("root", 20)], None)
    assert [e.k for e in planned] == [20]
