"""An endpoint that answers 20% 500s and 10% 429s: jobs finish with the same tree and
answer as a fault-free run of the same seed, with retries bounded."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers import wait_until
from tests.integration.conftest import Stack
from ttc_core.store.db import Database
from ttc_core.store.models import Node
from ttc_sim.tasks import synthetic_problems

pytestmark = pytest.mark.integration


def _run(stack: Stack, endpoint: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    job_id = stack.api.post("/v1/jobs", json={**body, "endpoint": endpoint}).json()["id"]
    job = wait_until(
        lambda: (
            (j := stack.api.get(f"/v1/jobs/{job_id}").json())["status"]
            in ("succeeded", "failed", "cancelled")
            and j
        ),
        timeout=120,
        every=0.1,
    )
    with Database(stack.database_url).session() as session:
        nodes = session.execute(
            select(Node.depth, Node.child_index, Node.status, Node.text, Node.answer)
            .where(Node.job_id == job_id)
            .order_by(Node.depth, Node.text, Node.child_index)
        ).all()
    return job, [tuple(n) for n in nodes]


@pytest.mark.parametrize(
    ("strategy", "params", "extra"),
    [
        ("self_consistency", {"n": 48}, {}),
        (
            "beam_search",
            {"n": 8, "beam_width": 2, "max_depth": 8},
            {"prm": {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"}},
        ),
    ],
)
def test_faulty_endpoint_gives_the_same_result(
    stack: Stack, strategy: str, params: dict[str, Any], extra: dict[str, Any]
) -> None:
    problem = synthetic_problems(1, seed=17, steps=5)[0]
    body = {
        "strategy": strategy,
        "prompt": problem.question,
        "params": params,
        "reference": problem.answer,
        "seed": 99,
        **extra,
    }
    clean, clean_nodes = _run(stack, "sim", body)
    stack.sim.reset_metrics()
    faulty, faulty_nodes = _run(stack, "sim-faulty", body)
    assert clean["status"] == faulty["status"] == "succeeded", faulty
    assert faulty["result"]["answer"] == clean["result"]["answer"]
    assert faulty["result"]["score"] == clean["result"]["score"]
    assert faulty_nodes == clean_nodes  # the same tree, node for node
    metrics = stack.sim_metrics()
    faults = metrics["faults"]
    assert isinstance(faults, dict)
    injected = sum(int(v) for v in faults.values())
    succeeded = faulty["usage"]["requests"]
    assert injected > 0, metrics
    # Every fault cost one retry, nothing more: requests seen = successes + faults. The
    # job's requests count its PRM calls too (the same simulator serves them, unfaulted).
    seen = int(metrics["requests_total"]) + int(metrics["prm_requests"])
    assert seen == succeeded + injected, metrics
    events = stack.api.get(f"/v1/jobs/{faulty['id']}/events").json()["data"]
    trouble = [e["data"] for e in events if e["kind"] == "endpoint_trouble"]
    assert sum(t["failed_attempts"] for t in trouble) == injected
