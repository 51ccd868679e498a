"""Adaptive stopping and a batch with one budget, as real jobs: SQLite with migrations,
the local executor and the simulator over HTTP (the full-size runs are
``bench/adaptive.py``; see ``bench/RESULTS.md``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from bench.adaptive import (
    BATCH_SAMPLES_PER_PROBLEM,
    VERIFIER,
    Bench,
    adaptive_vs_fixed,
    bench_for,
    run,
    run_batch,
    sim_config,
)
from ttc_api.routes.batches import _get
from ttc_core.engine.batches import expand
from ttc_core.engine.followup import FollowUp
from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.engine.steps import advance
from ttc_core.errors import NotFoundError
from ttc_core.problem_batches.rounds import (
    BatchSpec,
    advance_batch,
    create_batch,
    find_stalled_batches,
)
from ttc_core.store.models import JobEvent, ProblemBatch
from ttc_sim.runner import SimServer
from ttc_sim.tasks import graded_problems


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    with SimServer(sim_config()) as sim, bench_for(sim) as made:
        yield made


def test_adaptive_self_consistency_matches_fixed_n_with_fewer_samples(bench: Bench) -> None:
    # Measured on these 30 problems: accuracy 0.967 both, 3.27x fewer samples (the bench:
    # 200 problems, 0.940 both, 3.33x).
    problems = graded_problems(30, seed=7)
    fixed, adaptive = adaptive_vs_fixed(bench, problems, seed=7)
    # The adaptive job's samples are the fixed job's first ones (same seed): it can only
    # differ where it stopped on a leader that 40 samples overturn.
    assert adaptive.accuracy >= fixed.accuracy - 1 / 30
    assert fixed.mean_samples / adaptive.mean_samples >= 2.5
    assert all(s <= 40 for s in adaptive.samples)
    with bench.db.session() as session:
        stops = list(session.scalars(select(JobEvent).where(JobEvent.kind == "adaptive_stop")))
    assert len(stops) == 30
    first = stops[0].data
    assert first["rule"] == "beta" and first["stopped_by"] in ("posterior", "max_samples")
    assert set(first) >= {"counts", "probability", "samples", "confidence"}


def test_batch_spends_one_budget_where_votes_are_unsettled(bench: Bench) -> None:
    # The mechanics on 40 problems (measured: 0.975 both arms, too few problems to tell
    # them apart); the accuracy gain is the bench's 400-problem run (bench/RESULTS.md).
    problems = graded_problems(40, seed=3)
    result = run_batch(bench, problems, seed=3)
    arms = result["summary"]["arms"]
    budget = BATCH_SAMPLES_PER_PROBLEM * len(problems)
    assert arms["uniform"]["samples"] == budget
    assert budget - 2 <= arms["adaptive"]["samples"] <= budget
    assert arms["adaptive"]["accuracy"] >= arms["uniform"]["accuracy"]
    comparison = result["summary"]["comparison"]
    assert comparison["problems"] == 40
    low, high = comparison["ci95"]
    assert low <= comparison["difference"] <= high
    assert len(result["problems"]) == 40
    spent = [row["adaptive"]["samples"] for row in result["problems"]]
    assert min(spent) == 4 and max(spent) > BATCH_SAMPLES_PER_PROBLEM  # not a uniform split
    assert result["rounds"][0]["uniform_n"] == BATCH_SAMPLES_PER_PROBLEM


@pytest.fixture
def finished_batch(bench: Bench) -> str:
    """A small batch of this test's own, run to the end."""
    problems = graded_problems(4, seed=13)
    spec = BatchSpec.model_validate(
        {
            "problems": [{"prompt": p.question, "reference": p.answer} for p in problems],
            "endpoint": "sim",
            "verifier": VERIFIER,
            "budget": {"samples": 32},
        }
    )
    with bench.db.transaction() as session:
        batch, job_ids = create_batch(session, spec, bench.settings, tenant="bench")
        batch_id = batch.id
    run(bench, [FollowUp("advance", i) for i in job_ids])
    return batch_id


def test_a_finished_batch_step_is_safe_to_rerun(bench: Bench, finished_batch: str) -> None:
    with bench.db.session() as session:
        batch = session.get(ProblemBatch, finished_batch)
        assert batch is not None and batch.status == "succeeded"
        rounds = len(batch.state["log"])

    async def again() -> list[FollowUp]:
        ctx = EngineContext(settings=bench.settings, db=bench.db, http=make_http_client())
        try:
            return advance_batch(ctx, finished_batch)
        finally:
            await ctx.aclose()

    assert asyncio.run(again()) == []
    with bench.db.session() as session:
        batch = session.get(ProblemBatch, finished_batch)
        assert batch is not None and len(batch.state["log"]) == rounds


def test_another_tenants_batch_is_not_found(bench: Bench, finished_batch: str) -> None:
    with bench.db.session() as session:
        assert _get(session, finished_batch, "bench").id == finished_batch
        assert _get(session, finished_batch, None).id == finished_batch  # an admin key
        with pytest.raises(NotFoundError):
            _get(session, finished_batch, "someone-else")


def test_a_lost_batch_step_is_rerun_by_the_reaper(bench: Bench) -> None:
    """Every job finishes but the batch's driver step is lost (a message dropped, a
    worker killed): the batch is rows in the database, so the reaper finds it and a fresh
    executor (a restarted process) finishes it."""
    problems = graded_problems(5, seed=11)
    spec = BatchSpec.model_validate(
        {
            "problems": [{"prompt": p.question, "reference": p.answer} for p in problems],
            "endpoint": "sim",
            "verifier": VERIFIER,
            "budget": {"samples": 40},
        }
    )
    with bench.db.transaction() as session:
        batch, job_ids = create_batch(session, spec, bench.settings, tenant="bench")
        batch_id = batch.id

    async def jobs_only() -> list[FollowUp]:
        """Run the jobs; keep (do not run) the batch steps they hand back."""
        ctx = EngineContext(settings=bench.settings, db=bench.db, http=make_http_client())
        lost: list[FollowUp] = []
        pending = [FollowUp("advance", i) for i in job_ids]
        try:
            while pending:
                fu = pending.pop()
                if fu.kind == "advance":
                    pending.extend(advance(ctx, fu.id))
                elif fu.kind == "expand":
                    pending.extend(await expand(ctx, fu.id))
                else:
                    lost.append(fu)
        finally:
            await ctx.aclose()
        return lost

    assert asyncio.run(jobs_only()) == [FollowUp("batch", batch_id)] * 5
    with bench.db.session() as session:
        row = session.get(ProblemBatch, batch_id)
        assert row is not None and row.status == "queued" and row.state["round"] == 0
    assert find_stalled_batches(bench.db, stall_s=3600) == []  # not stalled long enough
    found = find_stalled_batches(bench.db, stall_s=0)
    assert found == [FollowUp("batch", batch_id)]
    run(bench, found)
    with bench.db.session() as session:
        row = session.get(ProblemBatch, batch_id)
        assert row is not None and row.status == "succeeded"
        assert row.result is not None and row.result["arms"]["adaptive"]["samples"] <= 40


def test_a_token_budget_is_spent_at_the_measured_tokens_per_sample(bench: Bench) -> None:
    problems = graded_problems(6, seed=17)
    budget = 6 * 8 * 75  # about 8 samples per problem at ~75 completion tokens each
    spec = BatchSpec.model_validate(
        {
            "problems": [{"prompt": p.question, "reference": p.answer} for p in problems],
            "endpoint": "sim",
            "verifier": VERIFIER,
            "budget": {"tokens": budget},
            "compare_uniform": True,
        }
    )
    with bench.db.transaction() as session:
        batch, job_ids = create_batch(session, spec, bench.settings, tenant="bench")
        batch_id = batch.id
    run(bench, [FollowUp("advance", i) for i in job_ids])
    with bench.db.session() as session:
        row = session.get(ProblemBatch, batch_id)
        assert row is not None and row.status == "succeeded" and row.result is not None
        arms = row.result["arms"]
        log = row.state["log"]
    # Allocated in samples at the probe's mean tokens per sample: never far over it.
    for arm in ("adaptive", "uniform"):
        assert arms[arm]["completion_tokens"] <= 1.1 * budget, arms
    # The uniform split spends the whole budget (within a few samples' worth).
    assert 0.8 * budget <= arms["uniform"]["completion_tokens"], arms
    # The adaptive arm spends it too, unless it stopped because no problem's marginal
    # gain was worth another sample: then a round says so (budget left, none allocated).
    if arms["adaptive"]["completion_tokens"] < 0.8 * budget:
        assert any(e.get("budget_left", 0) > 0 and e.get("allocated") == 0 for e in log), log
