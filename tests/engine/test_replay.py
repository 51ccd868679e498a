"""Acceptance of replay (issue 17), on SQLite and Postgres with the simulator over HTTP:
a finished job replayed against the same deterministic endpoint reproduces every node;
against another model (the simulator behaves differently per model name) the report
names the first divergent node of each path; a subtree replay regenerates only that
subtree, under a copy of the path above it. best_of_n and beam_search."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from tests.engine.conftest import ContextFactory
from tests.engine.test_expansion_cache import JOBS, settings_for, submit
from tests.engine.tree_compare import job_of, tree_by_position
from ttc_core.engine.runtime import EngineContext
from ttc_core.executor import run_job
from ttc_core.service.replay import ReplaySpec, create_replay, replay_report
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.models import Job, Node
from ttc_sim.runner import SimServer

#: The same simulated server, another model: steps are right far less often.
OTHER_MODEL = "sim-gsm8k;step_accuracy=0.3;sample_accuracy=0.3"


def with_other_endpoint(settings: Settings, sim: SimServer) -> Settings:
    other = EndpointConfig(
        base_url=sim.base_url, model=OTHER_MODEL, max_concurrency=64, max_n_per_request=4
    )
    return settings.model_copy(update={"endpoints": {**settings.endpoints, "sim-other": other}})


def replay(ctx: EngineContext, job_id: str, **spec: Any) -> str:
    with ctx.db.transaction() as session:
        source = session.get(Job, job_id)
        assert source is not None
        return create_replay(session, source, ReplaySpec(**spec), ctx.settings).id


def report(ctx: EngineContext, job_id: str) -> Any:
    with ctx.db.session() as session:
        return replay_report(session, job_of(ctx, job_id))


def scenario(ctx: EngineContext, test: Callable[[], Awaitable[None]]) -> None:
    async def go() -> None:
        try:
            await test()
        finally:
            await ctx.aclose()

    asyncio.run(go())


@pytest.mark.parametrize("kind", list(JOBS))
def test_replay_reproduces_and_reports_divergence(
    kind: str, database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    settings = with_other_endpoint(settings_for(database_url, sim), sim)
    ctx = make_context(settings)

    async def test() -> None:
        original = submit(ctx, settings, {**JOBS[kind], "seed": 4321})
        await run_job(ctx, original)
        old_tree = tree_by_position(ctx, original)

        # The same deterministic endpoint: every node again, every path whole.
        same = replay(ctx, original)
        requests = sim.metrics["requests_total"]
        await run_job(ctx, same)
        assert sim.metrics["requests_total"] > requests  # generated, not read from the cache
        assert job_of(ctx, same).status == "succeeded"
        assert tree_by_position(ctx, same) == old_tree
        result = report(ctx, same)
        assert result.nodes_compared == len(old_tree) == result.nodes_reproduced
        assert result.paths == result.paths_reproduced > 0
        assert result.divergences == []
        assert job_of(ctx, same).result["answer"] == job_of(ctx, original).result["answer"]

        # Another model: the report names each path's first divergent node.
        other = replay(ctx, original, endpoint="sim-other")
        await run_job(ctx, other)
        assert job_of(ctx, other).status == "succeeded"
        new_tree = tree_by_position(ctx, other)
        result = report(ctx, other)
        assert result.divergences, "another model wrote nothing different"
        assert result.paths_reproduced < result.paths
        assert sum(d.paths for d in result.divergences) == result.paths - result.paths_reproduced
        for d in result.divergences:
            assert d.reason == "text"
            assert old_tree[d.address][1] != new_tree[d.address][1]
            parts = d.address.split("/")
            for depth in range(1, len(parts)):  # every node above it came out the same
                above = "/".join(parts[:depth])
                assert old_tree[above][1] == new_tree[above][1]
        # Per path: its first divergent node is on it, or the path is whole.
        with ctx.db.session() as session:
            parents = dict(
                session.execute(
                    select(Node.id, Node.parent_id).where(Node.job_id == original)
                ).all()
            )
        firsts = {d.old_node_id for d in result.divergences}
        for path in result.path_divergences:
            on_path, node = [], path["leaf_node_id"]
            while node is not None:
                on_path.append(node)
                node = parents[node]
            divergent = path["divergent_node_id"]
            assert divergent is None or (divergent in on_path and divergent in firsts)

    scenario(ctx, test)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_replay_of_a_subtree(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    settings = with_other_endpoint(settings_for(database_url, sim), sim)
    ctx = make_context(settings)

    async def test() -> None:
        original = submit(ctx, settings, {**JOBS["beam_search"], "seed": 77})
        await run_job(ctx, original)
        old_tree = tree_by_position(ctx, original)
        # A depth-2 node with children: its subtree, under a copy of the path above it.
        under = next(a for a in sorted(old_tree) if a.count("/") == 1 and f"{a}/0" in old_tree)
        with ctx.db.session() as session:
            node_id = _ids_by_address(session, original)[under]
        before = sim.metrics["choices_total"]
        sub = replay(ctx, original, node_id=node_id)
        await run_job(ctx, sub)
        await asyncio.sleep(0.05)
        new_tree = tree_by_position(ctx, sub)
        subtree = {a: n for a, n in old_tree.items() if a == under or a.startswith(under + "/")}
        assert {a: new_tree[a] for a in subtree} == subtree
        # Only the subtree was generated; the root and the path above it are there.
        assert set(new_tree) == {"", under.split("/")[0], *subtree}
        parent = under.split("/")[0]
        assert new_tree[parent] == old_tree[parent]
        assert sim.metrics["choices_total"] - before == len(subtree)
        result = report(ctx, sub)
        assert result.nodes_compared == result.nodes_reproduced == len(subtree)

    scenario(ctx, test)


def _ids_by_address(session: Any, job_id: str) -> dict[str, str]:
    nodes = session.execute(
        select(Node.id, Node.parent_id, Node.child_index).where(Node.job_id == job_id)
    ).all()
    by_id = {n.id: n for n in nodes}
    out = {}
    for n in nodes:
        parts, current = [], n
        while current.parent_id is not None:
            parts.append(str(current.child_index))
            current = by_id[current.parent_id]
        out["/".join(reversed(parts))] = n.id
    return out
