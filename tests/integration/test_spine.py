"""A best-of-N and a self-consistency job travel REST -> Postgres -> Celery -> simulator
-> verifier -> Postgres -> result, and their numbers match what the simulator saw."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.helpers import wait_until
from tests.integration.conftest import Stack
from ttc_core.store.db import Database
from ttc_core.store.models import Job, Node
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
            # Both strategies ask for the same samples: the cache would serve the second.
            "cache": "off",
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


def _node_count(stack: Stack, job_id: str) -> int:
    with Database(stack.database_url).session() as session:
        return int(session.scalar(select(func.count(Node.id)).where(Node.job_id == job_id)) or 0)


def test_cancel_stops_a_running_job_and_is_idempotent(stack: Stack) -> None:
    """A job far too long to finish during the test (2,048 single-sample requests, 3 at a
    time) is cancelled while running: its status says so at once, the batches in flight
    drain, and then no request reaches the server and no node is added."""
    _quiesce(stack)
    problem = gsm8k_problems()[5]
    resp = stack.api.post(
        "/v1/jobs",
        json={
            "strategy": "self_consistency",
            "endpoint": "sim-narrow",
            "prompt": problem.question,
            "params": {"n": 2048},
        },
    )
    job_id = resp.json()["id"]
    wait_until(lambda: _node_count(stack, job_id) >= 1 + 16, timeout=60, every=0.05)
    first = stack.api.post(f"/v1/jobs/{job_id}/cancel")
    at_cancel = _node_count(stack, job_id)
    second = stack.api.post(f"/v1/jobs/{job_id}/cancel")
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == second.json()["status"] == "cancelled"

    # What was in flight drains (at most one batch of 8 per worker process)...
    def drained() -> bool:
        if stack.sim_metrics()["in_flight_requests"]:
            return False
        time.sleep(0.5)
        return stack.sim_metrics()["in_flight_requests"] == 0

    wait_until(drained, timeout=60)
    settled = _node_count(stack, job_id)
    requests = stack.sim_metrics()["requests_total"]
    assert settled <= at_cancel + 2 * 8, (at_cancel, settled)
    # ...and then nothing more is generated or saved for it.
    time.sleep(1.5)
    assert _node_count(stack, job_id) == settled
    assert stack.sim_metrics()["requests_total"] == requests
    job = stack.api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["result"] is None
    assert settled < 1 + 2048

    events = stack.api.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    assert events[0]["kind"] == "job_created"
    changes = [e["data"]["status"] for e in events if e["kind"] == "status_changed"]
    assert changes.count("cancelled") == 1 and changes[-1] == "cancelled"
    assert "succeeded" not in changes


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
