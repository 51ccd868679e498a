"""A prune that commits while a batch's requests are in flight: the children that land
under the pruned node afterwards are kept, marked pruned, and never expanded; the other
parent's children, in the same step, stay as they are. (A batch with no prune since its
claim skips that check on completion: ``ttc_core.engine.batches._complete``.) SQLite and
Postgres, the simulator over HTTP with requests slow enough to prune in the middle of."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from tests.engine.conftest import ContextFactory
from ttc_core.engine.batches import expand
from ttc_core.engine.control import prune_node
from ttc_core.engine.runtime import EngineContext
from ttc_core.engine.steps import advance
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.models import ExpansionBatch, Node
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems


@pytest.fixture
def slow_sim() -> Iterator[SimServer]:
    with SimServer(SimConfig(base_latency_s=0.5, per_token_latency_s=0.0, slots=64)) as s:
        yield s


def _settings(database_url: str, sim: SimServer) -> Settings:
    return Settings(
        database_url=database_url,
        endpoints={
            "sim": EndpointConfig(base_url=sim.base_url, model="sim-gsm8k", max_concurrency=64),
            "sim-prm": EndpointConfig(base_url=sim.url, model="sim-prm", kind="reward"),
        },
    )


def _children(ctx: EngineContext, parent_id: str) -> list[tuple[str, str]]:
    with ctx.db.session() as session:
        rows = session.execute(
            select(Node.id, Node.status).where(Node.parent_id == parent_id).order_by(Node.id)
        )
        return [(node_id, status) for node_id, status in rows]


def _parents(ctx: EngineContext, batch_ids: list[str]) -> set[str]:
    with ctx.db.session() as session:
        return {
            item["parent_id"]
            for batch_id in batch_ids
            for item in session.get_one(ExpansionBatch, batch_id).spec
        }


def _expansions(ctx: EngineContext, job_id: str) -> list[str]:
    return [f.id for f in advance(ctx, job_id) if f.kind == "expand"]


async def _run(ctx: EngineContext) -> None:
    problem = gsm8k_problems()[2]
    spec = JobSpec(
        strategy="beam_search",
        endpoint="sim",
        prompt=problem.question,
        params={"n": 4, "beam_width": 2, "max_depth": 3},
        prm={"kind": "prm", "endpoint": "sim-prm", "protocol": "json"},
        reference=problem.answer,
        seed=7,
    )
    with ctx.db.transaction() as session:
        job_id = create_job(session, spec, ctx.settings, tenant="t").id
    for batch_id in _expansions(ctx, job_id):  # depth 1: the root's children, no prune
        await expand(ctx, batch_id)
    second = _expansions(ctx, job_id)
    kept, cut = sorted(_parents(ctx, second))
    # Depth 2 in flight; the prune of one of its two parents commits meanwhile.
    tasks = [asyncio.ensure_future(expand(ctx, batch_id)) for batch_id in second]
    await asyncio.sleep(0.2)
    assert not any(t.done() for t in tasks)
    assert not _children(ctx, cut)  # nothing landed yet

    def prune() -> int:
        with ctx.db.transaction() as session:
            return prune_node(session, job_id, cut)[1]

    assert await asyncio.to_thread(prune) == 1  # the node alone: its children are in flight
    await asyncio.gather(*tasks)
    landed_cut, landed_kept = _children(ctx, cut), _children(ctx, kept)
    assert landed_cut and all(status == "pruned" for _, status in landed_cut), landed_cut
    assert landed_kept and all(status == "done" for _, status in landed_kept), landed_kept
    # Nothing under the pruned node is planned again.
    planned = _parents(ctx, _expansions(ctx, job_id))
    assert planned and not planned & {node_id for node_id, _ in landed_cut}, planned


def test_children_landing_under_a_node_pruned_in_flight_are_marked_pruned(
    database_url: str, slow_sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(_settings(database_url, slow_sim))

    async def run() -> None:
        try:
            await _run(ctx)
        finally:
            await ctx.aclose()

    asyncio.run(run())
