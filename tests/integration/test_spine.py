"""A best-of-N and a self-consistency job travel REST -> Postgres -> Celery -> simulator
-> verifier -> Postgres -> result, and their numbers match what the simulator saw."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.helpers import wait_until
from tests.integration.conftest import Stack
from ttc_core.db import Database
from ttc_core.models import Job, Node
from ttc_sim.tasks import gsm8k_problems

pytestmark = pytest.mark.integration


def _wait_terminal(stack: Stack, job_id: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = stack.api.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in {"succeeded", "failed", "cancelled"} else None

    return wait_until(done, timeout=timeout, every=0.1)  # type: ignore[no-any-return]


def _quiesce(stack: Stack) -> None:
    """The simulator is shared by the session's tests: cancel what other tests left
    running and wait until nothing is in flight, so that its counters count one test."""
    listed = stack.api.get("/v1/jobs", params={"limit": 200}).json()["data"]
    for job in listed:
        if job["status"] in {"queued", "running", "paused"}:
            stack.api.post(f"/v1/jobs/{job['id']}/cancel")
            _wait_terminal(stack, job["id"])

    def idle_for_a_while() -> bool:
        if stack.sim_metrics()["in_flight_requests"]:
            return False
        time.sleep(0.3)
        return stack.sim_metrics()["in_flight_requests"] == 0

    wait_until(idle_for_a_while, timeout=30)


def _all_nodes(stack: Stack, job_id: str, parent_id: str) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"parent_id": parent_id, "limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = stack.api.get(f"/v1/jobs/{job_id}/nodes", params=params).json()
        nodes.extend(page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            return nodes


@pytest.mark.parametrize(
    ("strategy", "verifier"),
    [
        ("best_of_n", {"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"}),
        ("self_consistency", {"kind": "math"}),
    ],
)
def test_job_runs_end_to_end(stack: Stack, strategy: str, verifier: dict[str, Any]) -> None:
    problem = gsm8k_problems()[3]
    stack.sim.reset_metrics()
    resp = stack.api.post(
        "/v1/jobs",
        json={
            "strategy": strategy,
            "endpoint": "sim",
            "prompt": problem.question,
            "params": {"n": 16, "temperature": 0.8, "max_tokens": 512},
            "verifier": verifier,
            "reference": problem.answer,
            "seed": 7,
        },
    )
    assert resp.status_code == 202, resp.text
    assert resp.headers["location"] == f"/v1/jobs/{resp.json()['id']}"
    job = _wait_terminal(stack, resp.json()["id"])
    assert job["status"] == "succeeded", job
    nodes = _all_nodes(stack, job["id"], job["root_node_id"])
    metrics = stack.sim_metrics()

    # Node counts and usage sums against what the simulator reports.
    assert len(nodes) == 16 == job["progress"]["nodes"]
    assert [n["child_index"] for n in nodes] == list(range(16))
    assert metrics["choices_total"] == 16
    assert job["usage"]["completion_tokens"] == metrics["completion_tokens_total"]
    assert sum(n["completion_tokens"] for n in nodes) == metrics["completion_tokens_total"]
    assert job["usage"]["prompt_tokens"] == metrics["prompt_tokens_total"]
    assert job["usage"]["requests"] == metrics["requests_total"]

    # The chosen answer against the reference and the strategy's definition.
    result = job["result"]
    answers = [n["answer"] for n in nodes]
    if strategy == "best_of_n":
        assert result["correct"] is True or not any(n["correct"] for n in nodes)
        assert result["score"] == max(n["score"] for n in nodes)
    else:
        top = max(answers.count(a) for a in set(answers))
        assert answers.count(result["answer"]) == top
        assert result["details"]["votes"][result["answer"]] == top
    assert result["correct"] == (result["answer"] == problem.answer)

    detail = stack.api.get(f"/v1/jobs/{job['id']}/nodes/{result['node_id']}").json()
    assert detail["path"][0]["role"] == "root"
    assert detail["path_text"] == detail["text"]
    assert result["text"] == detail["text"]


def test_jobs_list_is_cursor_paged(stack: Stack) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = stack.api.get("/v1/jobs", params=params).json()
        seen.extend(j["id"] for j in page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    db = Database(stack.database_url)
    with db.session() as session:
        total = session.scalar(select(func.count(Job.id)))
    assert len(seen) == len(set(seen)) == total


def test_cancel_is_idempotent_and_recorded(stack: Stack) -> None:
    problem = gsm8k_problems()[5]
    resp = stack.api.post(
        "/v1/jobs",
        json={
            "strategy": "self_consistency",
            "endpoint": "sim",
            "prompt": problem.question,
            "params": {"n": 64},
        },
    )
    job_id = resp.json()["id"]
    first = stack.api.post(f"/v1/jobs/{job_id}/cancel")
    second = stack.api.post(f"/v1/jobs/{job_id}/cancel")
    assert first.status_code == second.status_code == 200
    assert second.json()["status"] in {"cancelled", "succeeded"}
    events = stack.api.get(f"/v1/jobs/{job_id}/events").json()["data"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "job_created"
    if second.json()["status"] == "cancelled":
        cancelled = [e for e in events if e["data"].get("status") == "cancelled"]
        assert len(cancelled) == 1 and cancelled[0]["kind"] == "status_changed"
    db = Database(stack.database_url)
    with db.session() as session:
        nodes = session.scalar(select(func.count(Node.id)).where(Node.job_id == job_id))
    assert nodes is not None and nodes <= 65


def test_endpoint_concurrency_holds_across_worker_processes(stack: Stack) -> None:
    """4 concurrent jobs of 24 single-sample requests each, over 2 worker processes: never
    more than the endpoint's max_concurrency=3 in flight at the simulator."""
    _quiesce(stack)
    stack.sim.reset_metrics()
    job_ids = []
    for i in range(4):
        problem = gsm8k_problems()[9 + i]
        resp = stack.api.post(
            "/v1/jobs",
            json={
                "strategy": "self_consistency",
                "endpoint": "sim-narrow",
                "prompt": problem.question,
                "params": {"n": 24},
            },
        )
        job_ids.append(resp.json()["id"])
    jobs = [_wait_terminal(stack, job_id) for job_id in job_ids]
    assert all(job["status"] == "succeeded" for job in jobs), jobs
    metrics = stack.sim_metrics()
    assert metrics["requests_total"] == 96 == sum(j["usage"]["requests"] for j in jobs)
    assert metrics["peak_in_flight_requests"] == 3
