"""Operators steer live jobs: pause/resume, prune, expand, cancel; each is an event."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers import wait_until
from tests.integration.conftest import Stack
from ttc_core.store.db import Database
from ttc_core.store.models import Node
from ttc_sim.tasks import gsm8k_problems, synthetic_problems

pytestmark = pytest.mark.integration

PRM = {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"}


def _submit(stack: Stack, **body: Any) -> str:
    resp = stack.api.post("/v1/jobs", json={"endpoint": "sim", **body})
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]  # type: ignore[no-any-return]


def _job(stack: Stack, job_id: str) -> dict[str, Any]:
    return stack.api.get(f"/v1/jobs/{job_id}").json()  # type: ignore[no-any-return]


def _finished(stack: Stack, job_id: str, timeout: float = 90) -> dict[str, Any]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: (j := _job(stack, job_id))["status"] in ("succeeded", "failed", "cancelled") and j,
        timeout=timeout,
    )


def _events(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    return stack.api.get(f"/v1/jobs/{job_id}/events").json()["data"]  # type: ignore[no-any-return]


def _nodes(stack: Stack, job_id: str) -> list[Node]:
    with Database(stack.database_url).session() as session:
        return list(session.scalars(select(Node).where(Node.job_id == job_id)))


def _beam(stack: Stack, seed: int) -> str:
    problem = synthetic_problems(1, seed=seed, steps=6)[0]
    return _submit(
        stack,
        strategy="beam_search",
        prompt=problem.question,
        params={"n": 8, "beam_width": 2, "max_depth": 8},
        prm=PRM,
        reference=problem.answer,
        seed=seed,
    )


def test_pause_then_resume_finishes_with_no_node_generated_twice(stack: Stack) -> None:
    stack.sim.reset_metrics()
    job_id = _beam(stack, seed=31)
    wait_until(lambda: _job(stack, job_id)["progress"]["step"] >= 2, timeout=60, every=0.02)
    paused = stack.api.post(f"/v1/jobs/{job_id}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    # In-flight work lands, then nothing moves.
    wait_until(lambda: _job(stack, job_id)["progress"]["pending_batches"] == 0, timeout=30)
    held = _job(stack, job_id)
    time.sleep(0.5)
    assert _job(stack, job_id)["progress"] == held["progress"]
    assert stack.api.post(f"/v1/jobs/{job_id}/pause").status_code == 200  # idempotent
    resumed = stack.api.post(f"/v1/jobs/{job_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    final = _finished(stack, job_id)
    assert final["status"] == "succeeded", final
    nodes = _nodes(stack, job_id)
    assert len({(n.parent_id, n.child_index) for n in nodes}) == len(nodes)
    assert stack.sim_metrics()["choices_total"] == len(nodes) - 1
    statuses = [e["data"].get("status") for e in _events(stack, job_id)]
    assert "paused" in statuses and statuses[-1] == "succeeded"
    # A finished job cannot be paused.
    assert stack.api.post(f"/v1/jobs/{job_id}/pause").status_code == 409


def test_prune_stops_growth_under_the_node(stack: Stack) -> None:
    job_id = _beam(stack, seed=32)
    wait_until(lambda: _job(stack, job_id)["progress"]["step"] >= 2, timeout=60, every=0.02)
    stack.api.post(f"/v1/jobs/{job_id}/pause")
    wait_until(lambda: _job(stack, job_id)["progress"]["pending_batches"] == 0, timeout=30)
    nodes = _nodes(stack, job_id)
    parents = {n.parent_id for n in nodes}
    target = next(n for n in nodes if n.depth == 1 and n.id in parents)
    resp = stack.api.post(f"/v1/jobs/{job_id}/nodes/{target.id}/prune")
    assert resp.status_code == 200, resp.text
    pruned_count = resp.json()["pruned"]
    assert pruned_count >= 2  # the node and its children
    stack.api.post(f"/v1/jobs/{job_id}/resume")
    assert _finished(stack, job_id)["status"] == "succeeded"
    after = {n.id: n for n in _nodes(stack, job_id)}

    def under(node: Node) -> bool:
        while node.parent_id:
            if node.id == target.id:
                return True
            node = after[node.parent_id]
        return False

    subtree = [n for n in after.values() if under(n)]
    assert len(subtree) == pruned_count  # nothing grew under it
    assert all(n.status == "pruned" for n in subtree)
    result_path = _job(stack, job_id)["result"]["details"]["path"]
    assert target.id not in result_path
    assert any(e["kind"] == "node_pruned" for e in _events(stack, job_id))


def test_expand_a_node_of_a_finished_job(stack: Stack) -> None:
    problem = gsm8k_problems()[4]
    job_id = _submit(
        stack,
        strategy="self_consistency",
        prompt=problem.question,
        params={"n": 4},
        reference=problem.answer,
    )
    first = _finished(stack, job_id)
    assert first["progress"]["nodes"] == 4
    resp = stack.api.post(f"/v1/jobs/{job_id}/nodes/{first['root_node_id']}/expand", json={"k": 3})
    assert resp.status_code == 202, resp.text
    again = _finished(stack, job_id)
    assert again["status"] == "succeeded"
    assert again["progress"]["nodes"] == 7
    assert sum(again["result"]["details"]["votes"].values()) == 7
    kinds = [e["kind"] for e in _events(stack, job_id)]
    assert "node_expand_requested" in kinds
    bad = stack.api.post(f"/v1/jobs/{job_id}/nodes/{first['root_node_id']}/expand", json={"k": 0})
    assert bad.status_code == 422 and bad.json()["field"] == "k"


def test_cancel_stops_new_requests_within_two_seconds(stack: Stack) -> None:
    problem = gsm8k_problems()[6]
    job_id = _submit(
        stack,
        strategy="self_consistency",
        prompt=problem.question,
        params={"n": 1000},
    )
    wait_until(lambda: _job(stack, job_id)["progress"]["nodes"] >= 16, timeout=60, every=0.02)
    resp = stack.api.post(f"/v1/jobs/{job_id}/cancel")
    assert resp.json()["status"] == "cancelled"
    time.sleep(2.0)
    seen = stack.sim_metrics()["requests_total"]
    time.sleep(1.5)
    assert stack.sim_metrics()["requests_total"] == seen
    assert _job(stack, job_id)["progress"]["nodes"] < 1000
