"""No path relies on a message arriving exactly once: an expansion batch run twice, in
sequence or at the same time, leaves the same tree and counts usage once; a batch that
lost some of its rows regenerates only those (never pay twice)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import delete, select, update

from tests.engine.conftest import ContextFactory, make_settings
from tests.helpers import wait_until
from ttc_core.engine.batches import expand
from ttc_core.engine.steps import FollowUp, advance
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.store.models import BatchStatus, ExpansionBatch, Job, Node
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems


def _snapshot(ctx: Any, job_id: str) -> list[tuple[Any, ...]]:
    # Not completion_tokens: servers report usage per request, and a node's share of a
    # request with n > 1 is apportioned by text length (sums are exact, shares are not).
    with ctx.db.session() as session:
        rows = session.execute(
            select(
                Node.id,
                Node.parent_id,
                Node.child_index,
                Node.text,
                Node.answer,
                Node.score,
                Node.seed,
            )
            .where(Node.job_id == job_id)
            .order_by(Node.id)
        ).all()
    return [tuple(r) for r in rows]


def _job(ctx: Any, job_id: str) -> Job:
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_expand_twice_leaves_the_tree_unchanged(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    settings = make_settings(database_url, sim, expand_batch_samples=8)
    ctx = make_context(settings)
    problem = gsm8k_problems()[0]
    spec = JobSpec(
        strategy="best_of_n",
        endpoint="sim",
        prompt=problem.question,
        params={"n": 24},
        reference=problem.answer,
        seed=11,
        cache="off",  # regenerating lost rows must reach the server (the cache would serve them)
    )
    with ctx.db.transaction() as session:
        job_id = create_job(session, spec, settings, tenant="t").id

    async def scenario() -> None:
        try:
            batches = advance(ctx, job_id)
            assert [f.kind for f in batches] == ["expand"] * 3
            first, second, third = (f.id for f in batches)

            # Sequential duplicate: the second run does nothing and asks for nothing.
            assert await expand(ctx, first) == []
            tree = _snapshot(ctx, job_id)
            usage = _job(ctx, job_id).completion_tokens
            time.sleep(0.2)  # the simulator counts a request as it finishes answering
            requests = sim.metrics["requests_total"]
            assert await expand(ctx, first) == []
            assert _snapshot(ctx, job_id) == tree
            assert _job(ctx, job_id).completion_tokens == usage
            assert sim.metrics["requests_total"] == requests

            # Concurrent duplicates: both may generate, one row each wins, usage once.
            outcomes = await asyncio.gather(expand(ctx, second), expand(ctx, second))
            assert sorted(len(o) for o in outcomes) == [0, 0]
            assert len(_snapshot(ctx, job_id)) == 1 + 16

            # A batch that lost rows (say, a crash between two inserts) regenerates only those.
            done = await expand(ctx, third)
            assert done == [FollowUp("advance", job_id)]
            full_tree = _snapshot(ctx, job_id)
            with ctx.db.transaction() as session:
                victims = session.scalars(
                    select(Node.id)
                    .where(Node.batch_id == third)
                    .order_by(Node.child_index)
                    .limit(3)
                ).all()
                session.execute(delete(Node).where(Node.id.in_(victims)))
                session.execute(
                    update(ExpansionBatch)
                    .where(ExpansionBatch.id == third)
                    .values(status=BatchStatus.pending)
                )
                session.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(
                        pending_batches=1,
                        node_count=Job.node_count - 8,
                        completion_tokens=0,
                        prompt_tokens=0,
                        requests=0,
                    )
                )
            choices = sim.metrics["choices_total"]
            await expand(ctx, third)
            # The simulator counts a request as it finishes answering: let it settle.
            wait_until(lambda: sim.metrics["choices_total"] - choices >= 3, timeout=5, every=0.01)
            assert sim.metrics["choices_total"] - choices == 3
            assert _snapshot(ctx, job_id) == full_tree  # same seeds, same samples

            assert advance(ctx, job_id) == []
            job = _job(ctx, job_id)
            assert job.status == "succeeded"
            assert job.node_count == 24
            with ctx.db.session() as session:
                nodes = session.scalars(select(Node).where(Node.job_id == job_id)).all()
            assert len({(n.parent_id, n.child_index) for n in nodes}) == len(nodes) == 25
        finally:
            await ctx.aclose()

    asyncio.run(scenario())
