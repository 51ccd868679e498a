"""Every tree strategy runs through the API on the distributed stack (Celery worker,
Postgres, the simulator's model, PRM and judge) and leaves the tree its parameters imply."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers import wait_until
from tests.integration.conftest import Stack
from ttc_core.store.db import Database
from ttc_core.store.models import Node
from ttc_sim.tasks import gsm8k_problems

pytestmark = pytest.mark.integration

PRM = {"kind": "prm", "endpoint": "sim-prm", "aggregation": "min"}
JUDGE = {"kind": "llm_judge", "endpoint": "sim", "samples": 3}


def _run(stack: Stack, strategy: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    problem = gsm8k_problems()[2]
    body = {
        "strategy": strategy,
        "endpoint": "sim",
        "prompt": problem.question,
        "params": params,
        "reference": problem.answer,
        "seed": 21,
        **extra,
    }
    resp = stack.api.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]

    def done() -> dict[str, Any] | None:
        job = stack.api.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in {"succeeded", "failed", "cancelled"} else None

    job = wait_until(done, timeout=120, every=0.2)
    assert job["status"] == "succeeded", job
    assert job["result"]["details"]["path"][0] == job["root_node_id"]
    return job  # type: ignore[no-any-return]


def _nodes(stack: Stack, job_id: str) -> list[Node]:
    with Database(stack.database_url).session() as session:
        return list(session.scalars(select(Node).where(Node.job_id == job_id)))


def _children(nodes: list[Node]) -> dict[str, list[Node]]:
    out: dict[str, list[Node]] = {}
    for n in nodes:
        if n.parent_id:
            out.setdefault(n.parent_id, []).append(n)
    return out


def test_beam_search_keeps_n_over_m_beams_per_depth(stack: Stack) -> None:
    n, m = 8, 2
    job = _run(stack, "beam_search", {"n": n, "beam_width": m, "max_depth": 8}, prm=PRM)
    nodes = _nodes(stack, job["id"])
    kids = _children(nodes)
    per_depth = Counter(x.depth for x in nodes if x.role == "step")
    assert per_depth[1] == n
    for depth in range(2, max(per_depth) + 1):
        parents = [x for x in nodes if x.depth == depth - 1 and x.id in kids]
        open_before = [x for x in nodes if x.depth == depth - 1 and not x.is_terminal]
        assert len(parents) == min(n // m, len(open_before))
        assert all(len(kids[p.id]) == m for p in parents)
        assert per_depth[depth] == m * len(parents)
        # The kept beams are the best-scored open ones.
        cut = min((p.score for p in parents), default=0)
        assert all((x.score or 0) <= cut for x in open_before if x.id not in kids)
    # Step scores come from the PRM, paths are scored by their weakest step ("min").
    assert all(x.step_score is not None for x in nodes if x.role == "step")
    assert job["usage"]["completion_tokens"] == sum(x.completion_tokens for x in nodes)


def test_dvts_grows_n_over_m_independent_subtrees(stack: Stack) -> None:
    n, m = 8, 2
    job = _run(stack, "dvts", {"n": n, "beam_width": m, "max_depth": 8}, prm=PRM)
    nodes = _nodes(stack, job["id"])
    kids = _children(nodes)
    first = [x for x in nodes if x.depth == 1]
    assert len(first) == n
    expanded_first = [x for x in first if x.id in kids]
    # One kept candidate per group of beam_width first steps.
    groups = {x.child_index // m for x in expanded_first}
    assert len(groups) == len(expanded_first) <= n // m
    for parent_id, children in kids.items():
        if parent_id != job["root_node_id"]:
            assert len(children) == m
    for depth in range(2, max(x.depth for x in nodes) + 1):
        assert len([x for x in nodes if x.depth == depth and x.id in kids]) <= n // m


def test_mcts_visit_counts_sum(stack: Stack) -> None:
    params = {"simulations": 10, "k": 3, "parallel": 3, "max_depth": 8}
    job = _run(stack, "mcts", params, prm=PRM)
    nodes = _nodes(stack, job["id"])
    kids = _children(nodes)
    root = next(x for x in nodes if x.parent_id is None)
    assert root.meta["visits"] == sum(c.meta["visits"] for c in kids[root.id])
    for x in nodes:
        if x.role != "step":
            continue
        below = sum(c.meta["visits"] for c in kids.get(x.id, []) if c.status == "done")
        assert x.meta["visits"] == 1 + below
    expanded = [x for x in nodes if x.id in kids]
    assert all(len(kids[x.id]) in (1, 3) for x in expanded)  # k, or 1 when completing


def test_tot_bfs_with_the_llm_judge(stack: Stack) -> None:
    job = _run(stack, "tot_bfs", {"k": 3, "breadth": 2, "max_depth": 8}, prm=JUDGE)
    nodes = _nodes(stack, job["id"])
    per_depth = Counter(x.depth for x in nodes if x.role == "step")
    assert per_depth[1] == 3
    assert all(count <= 2 * 3 for count in per_depth.values())
    assert all(x.score is not None for x in nodes if x.role == "step")


def test_tot_dfs_expands_one_state_at_a_time(stack: Stack) -> None:
    job = _run(stack, "tot_dfs", {"k": 3, "threshold": 0.3, "max_depth": 8}, prm=PRM)
    nodes = _nodes(stack, job["id"])
    kids = _children(nodes)
    assert all(len(children) == 3 for children in kids.values())
    assert job["result"]["details"].get("stopped") == "found" or job["result"]["answer"]


def test_refine_chains_attempt_critique_revision(stack: Stack) -> None:
    job = _run(stack, "refine", {"rounds": 2, "n": 2})
    nodes = _nodes(stack, job["id"])
    kids = _children(nodes)
    for x in nodes:
        for child in kids.get(x.id, []):
            expected = {
                "root": "sample",
                "sample": "critique",
                "revise": "critique",
                "critique": "revise",
            }[x.role]
            assert child.role == expected
    revisions = Counter(x.role for x in nodes)["revise"]
    assert revisions <= 2 * 2
    if job["result"]["correct"] is False:
        assert revisions == 4  # only stops early when an attempt passes
