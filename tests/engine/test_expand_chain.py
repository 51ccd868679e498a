"""``expand_chain``: a worker goes on from one depth to the next in one transaction per
depth (completion, driver step, claim of the next batch). It must grow exactly the tree
that separate tasks grow, hand the step's other batches out, stop at its deadline, and
fall back to a separate driver step when the inline one fails."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select

from tests.engine.conftest import ContextFactory
from ttc_core.engine import batches
from ttc_core.engine.batches import BatchError, expand_chain
from ttc_core.engine.followup import FollowUp
from ttc_core.engine.steps import advance
from ttc_core.executor import run_job
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.models import ExpansionBatch, Job, Node
from ttc_sim.runner import SimServer
from ttc_sim.tasks import synthetic_problems


def _settings(database_url: str, sim: SimServer, **kw: Any) -> Settings:
    return Settings(
        database_url=database_url,
        endpoints={
            "sim": EndpointConfig(base_url=sim.base_url, model="sim-gsm8k", max_concurrency=64),
            "sim-prm": EndpointConfig(base_url=sim.url, model="sim-prm", kind="reward"),
        },
        **kw,
    )


def _submit(ctx: Any, settings: Settings, seed: int = 3) -> str:
    problem = synthetic_problems(1, seed=seed, steps=4)[0]
    spec = JobSpec.model_validate(
        {
            "strategy": "beam_search",
            "endpoint": "sim",
            "prompt": problem.question,
            # 8 samples per depth in batches of 4: two batches a step, one runs inline.
            "params": {"n": 8, "beam_width": 2, "max_depth": 5, "max_tokens": 64},
            "prm": {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"},
            "reference": problem.answer,
            "seed": seed,
            # Both runs generate: the test compares how they grow, not the cache.
            "cache": "off",
        }
    )
    with ctx.db.transaction() as session:
        return create_job(session, spec, settings, tenant="default").id


def _tree(ctx: Any, job_id: str) -> list[tuple[Any, ...]]:
    with ctx.db.session() as session:
        rows = session.execute(
            select(Node.id, Node.parent_id, Node.text, Node.score, Node.status)
            .where(Node.job_id == job_id)
            .order_by(Node.id)
        ).all()
    return [tuple(r) for r in rows]


def _job(ctx: Any, job_id: str) -> Job:
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


async def _drain(ctx: Any, followups: list[FollowUp], until: float) -> list[list[FollowUp]]:
    """Run follow-ups the way Celery tasks would: an advance task drives, then chains from
    its first batch; each sent batch is a task of its own. Returns what each chain sent."""
    sent_log: list[list[FollowUp]] = []
    queue = list(followups)
    while queue:
        item = queue.pop(0)
        if item.kind == "advance":
            queue.extend(advance(ctx, item.id))
            continue
        sent: list[FollowUp] = []
        await expand_chain(ctx, item.id, until=until, send=sent.extend)
        sent_log.append(sent)
        queue.extend(sent)
    return sent_log


def test_chain_grows_the_same_tree_as_separate_tasks(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    settings = _settings(database_url, sim, expand_batch_samples=4)
    ctx = make_context(settings)
    separate, chained = _submit(ctx, settings), _submit(ctx, settings)

    async def go() -> list[list[FollowUp]]:
        try:
            await run_job(ctx, separate)
            return await _drain(ctx, [FollowUp("advance", chained)], time.monotonic() + 60)
        finally:
            await ctx.aclose()

    sent_log = asyncio.run(go())
    a, b = _job(ctx, separate), _job(ctx, chained)
    assert a.status == b.status == "succeeded", (a.error, b.error)
    strip = [(row[2], row[3], row[4]) for row in _tree(ctx, separate)]
    assert sorted(strip, key=repr) == sorted(
        [(row[2], row[3], row[4]) for row in _tree(ctx, chained)], key=repr
    )
    assert (a.step, a.node_count, a.requests, a.completion_tokens) == (
        b.step,
        b.node_count,
        b.requests,
        b.completion_tokens,
    )
    assert a.result is not None and b.result is not None
    assert a.result["answer"] == b.result["answer"]
    # Each depth's second batch was handed out; no driver step went to a queue.
    handed = [f for sent in sent_log for f in sent]
    assert handed and all(f.kind == "expand" for f in handed)
    with ctx.db.session() as session:
        attempts = session.scalars(
            select(ExpansionBatch.attempts).where(ExpansionBatch.job_id == chained)
        ).all()
    assert attempts and all(n == 1 for n in attempts)


def test_chain_stops_at_its_deadline_and_sends_the_driver_step(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    settings = _settings(database_url, sim, expand_batch_samples=64)
    ctx = make_context(settings)
    job_id = _submit(ctx, settings)
    sent: list[FollowUp] = []

    async def go() -> None:
        try:
            first = advance(ctx, job_id)
            assert len(first) == 1
            await expand_chain(ctx, first[0].id, until=time.monotonic(), send=sent.extend)
        finally:
            await ctx.aclose()

    asyncio.run(go())
    assert sent == [FollowUp("advance", job_id)]
    assert _job(ctx, job_id).step == 1


def test_inline_driver_failure_completes_the_batch_and_sends_the_step(
    database_url: str,
    sim: SimServer,
    make_context: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings(database_url, sim, expand_batch_samples=64)
    ctx = make_context(settings)
    job_id = _submit(ctx, settings)
    sent: list[FollowUp] = []

    def broken(*_: Any) -> list[FollowUp]:
        raise RuntimeError("planner bug")

    async def go() -> None:
        try:
            first = advance(ctx, job_id)
            monkeypatch.setattr(batches, "drive", broken)
            await expand_chain(ctx, first[0].id, until=time.monotonic() + 60, send=sent.extend)
        finally:
            await ctx.aclose()

    asyncio.run(go())
    # The batch's work is kept and counted; the driver step goes to its own task.
    assert sent == [FollowUp("advance", job_id)]
    job = _job(ctx, job_id)
    assert job.pending_batches == 0 and job.node_count == 8 and job.step == 1


def test_a_failing_later_batch_is_named(
    database_url: str,
    sim: SimServer,
    make_context: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings(database_url, sim, expand_batch_samples=64)
    ctx = make_context(settings)
    job_id = _submit(ctx, settings)
    real_generate = batches.generate_rows
    calls = {"n": 0}

    async def generate(*args: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("endpoint gone")
        return await real_generate(*args)

    monkeypatch.setattr(batches, "generate_rows", generate)

    async def go() -> tuple[str, BatchError]:
        try:
            first = advance(ctx, job_id)[0].id
            with pytest.raises(BatchError) as err:
                await expand_chain(ctx, first, until=time.monotonic() + 60, send=list)
            return first, err.value
        finally:
            await ctx.aclose()

    first, error = asyncio.run(go())
    failed = error.batch_id
    assert failed != first  # the second depth's batch, not the one the task started with
    assert isinstance(error.__cause__, ConnectionError)
    with ctx.db.session() as session:
        batch = session.get(ExpansionBatch, failed)
        assert batch is not None and batch.status == "pending" and batch.claimed_until is None
