"""Search quality matches theory on simulated problems with known per-sample accuracy.

Over 200 synthetic problems whose samples are right with p = 0.3 (wrong ones spread
uniformly over 4 distractors), best-of-N with an oracle verifier must reach
1 - (1 - p)^N and self-consistency the multinomial-majority accuracy (ties split evenly,
since ties go to the first-seen answer and sample order is exchangeable). Tolerance:
3.5 binomial standard errors of the 200-problem mean.
"""

from __future__ import annotations

import asyncio
import math
from functools import lru_cache
from itertools import product

import pytest
from sqlalchemy import select

from tests.engine.conftest import ContextFactory, make_settings
from ttc_core.executor import run_job
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.store.models import Job, Node
from ttc_sim.runner import SimServer
from ttc_sim.tasks import synthetic_problems

P = 0.3
DISTRACTORS = 4
N = 8
PROBLEMS = 200
MODEL = f"sim-gsm8k;sample_accuracy={P};distractors={DISTRACTORS}"


def oracle_accuracy(p: float, n: int) -> float:
    return 1 - (1 - p) ** n


@lru_cache
def majority_accuracy(p: float, distractors: int, n: int) -> float:
    """P(the right answer wins the vote), ties split evenly, by exact enumeration."""
    q = (1 - p) / distractors
    probs = [p] + [q] * distractors
    total = 0.0
    for counts in product(range(n + 1), repeat=distractors + 1):
        if sum(counts) != n:
            continue
        top = max(counts)
        if counts[0] != top:
            continue
        ways = math.factorial(n)
        for c in counts:
            ways //= math.factorial(c)
        prob = ways * math.prod(pr**c for pr, c in zip(probs, counts, strict=True))
        total += prob / counts.count(top)
    return total


def test_theory_helpers() -> None:
    assert oracle_accuracy(0.3, 1) == pytest.approx(0.3)
    assert majority_accuracy(0.3, 4, 1) == pytest.approx(0.3)
    # Two samples: right if both right, or one right and a coin flip against a distractor.
    assert majority_accuracy(0.3, 4, 2) == pytest.approx(0.09 + 2 * 0.3 * 0.7 / 2)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_accuracy_matches_theory(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    settings = make_settings(database_url, sim, model=MODEL, expand_batch_samples=64)
    ctx = make_context(settings)
    problems = synthetic_problems(PROBLEMS, seed=5)
    jobs: dict[str, tuple[str, str]] = {}
    with ctx.db.transaction() as session:
        for i, problem in enumerate(problems):
            for strategy in ("best_of_n", "self_consistency"):
                spec = JobSpec(
                    strategy=strategy,
                    endpoint="sim",
                    prompt=problem.question,
                    params={"n": N},
                    # The oracle sees the reference; the vote must not (no tie-breaking help).
                    reference=problem.answer if strategy == "best_of_n" else None,
                    seed=10_000 + i,
                )
                job = create_job(session, spec, settings, tenant="t")
                jobs[job.id] = (strategy, problem.answer)

    async def run_all() -> None:
        try:
            await asyncio.gather(*(run_job(ctx, job_id) for job_id in jobs))
        finally:
            await ctx.aclose()

    asyncio.run(run_all())

    right = {"best_of_n": 0, "self_consistency": 0}
    with ctx.db.session() as session:
        for job in session.scalars(select(Job).where(Job.id.in_(list(jobs)))):
            strategy, truth = jobs[job.id]
            assert job.status == "succeeded", job.error
            assert job.node_count == N
            right[strategy] += int((job.result or {}).get("answer") == truth)
        sample_right = session.scalars(
            select(Node.correct).where(Node.role == "sample", Node.correct.is_not(None))
        ).all()

    # The simulator's per-sample accuracy is what it was told (1,600 samples).
    observed_p = sum(sample_right) / len(sample_right)
    assert abs(observed_p - P) < 3.5 * math.sqrt(P * (1 - P) / len(sample_right))

    for strategy, expected in (
        ("best_of_n", oracle_accuracy(P, N)),
        ("self_consistency", majority_accuracy(P, DISTRACTORS, N)),
    ):
        accuracy = right[strategy] / PROBLEMS
        tolerance = 3.5 * math.sqrt(expected * (1 - expected) / PROBLEMS)
        print(f"{strategy}: accuracy {accuracy:.3f}, theory {expected:.3f} +- {tolerance:.3f}")
        assert abs(accuracy - expected) <= tolerance, (strategy, accuracy, expected)
