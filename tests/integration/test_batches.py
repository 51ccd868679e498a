"""Batches and ``strategy: auto`` through the API with a real Celery worker, and their
bad input: 4xx problem+json naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import wait_until
from tests.integration.conftest import Stack
from ttc_sim.tasks import graded_problems

pytestmark = pytest.mark.integration

VERIFIER = {"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"}
POLICY: dict[str, Any] = {
    "signal": "agreement",
    "probe": 4,
    "bands": [
        {"name": "easy", "up_to": 0.25, "strategy": "self_consistency", "params": {"n": 4}},
        {"name": "hard", "up_to": 1.0, "strategy": "self_consistency", "params": {"n": 12}},
    ],
}


def test_small_batch_with_one_budget(stack: Stack) -> None:
    problems = graded_problems(6, seed=5)
    body = {
        "problems": [{"prompt": p.question, "reference": p.answer} for p in problems],
        "strategy": "auto",
        "endpoint": "sim",
        "verifier": VERIFIER,
        "budget": {"samples": 48},
        "compare_uniform": True,
        "seed": 5,
    }
    accepted = stack.api.post("/v1/batches", json=body)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["jobs"] == 12
    location = accepted.headers["Location"]

    def done() -> dict[str, Any] | None:
        batch: dict[str, Any] = stack.api.get(location).json()
        return batch if batch["status"] in ("succeeded", "failed") else None

    batch = wait_until(done, timeout=120)
    assert batch["status"] == "succeeded", batch
    arms = batch["summary"]["arms"]
    assert arms["uniform"]["samples"] == 48 and arms["adaptive"]["samples"] <= 48
    assert arms["adaptive"]["accuracy"] is not None
    assert len(batch["problems"]) == 6
    assert {"answer", "correct", "samples", "job_id"} <= set(batch["problems"][0]["adaptive"])
    assert batch["rounds"] and "comparison" in batch["summary"]
    listed = stack.api.get("/v1/batches").json()["data"]
    assert batch["id"] in [b["id"] for b in listed]


def test_auto_job_explains_its_decision(stack: Stack) -> None:
    problem = graded_problems(1, seed=9)[0]
    body = {
        "strategy": "auto",
        "endpoint": "sim",
        "prompt": problem.question,
        "params": {"policy": POLICY},
        "verifier": VERIFIER,
        "reference": problem.answer,
    }
    accepted = stack.api.post("/v1/jobs", json=body)
    assert accepted.status_code == 202, accepted.text
    job_url = accepted.headers["Location"]
    job = wait_until(
        lambda: (j := stack.api.get(job_url).json())["status"] == "succeeded" and j, timeout=60
    )
    decision = job["result"]["details"]["auto"]
    assert decision["band"] in ("easy", "hard")
    events = stack.api.get(job_url + "/events").json()["data"]
    kinds = [e["kind"] for e in events]
    assert kinds.count("auto_decision") == 1
    explained = next(e for e in events if e["kind"] == "auto_decision")["data"]["explain"]
    assert explained.startswith("probe agreement")


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        (
            "/v1/jobs",
            {
                "strategy": "auto",
                "endpoint": "sim",
                "prompt": "What is 6 times 7?",
                "params": {
                    "policy": {**POLICY, "bands": [{**POLICY["bands"][1], "strategy": "x"}]}
                },
            },
            422,
            "params.policy.bands.0.strategy",
        ),
        (
            "/v1/jobs",
            {
                "strategy": "self_consistency",
                "endpoint": "sim",
                "prompt": "What is 6 times 7?",
                "params": {"n": 40, "adaptive": {"confidence": 7}},
            },
            422,
            "params.adaptive.confidence",
        ),
        (
            "/v1/jobs",
            {
                "strategy": "self_consistency",
                "endpoint": "sim",
                "prompt": "What is 6 times 7?",
                "params": {"n": 4, "adaptive": {"min_samples": 400}},
            },
            422,
            "params.adaptive.min_samples",
        ),
        (
            "/v1/jobs",
            {
                "strategy": "best_of_n",
                "endpoint": "sim",
                "prompt": "What is 6 times 7?",
                "params": {"n": 4, "stop_on_pass": True},
                "verifier": {"kind": "reward_model", "endpoint": "sim-rm"},
            },
            422,
            "params.stop_on_pass",
        ),
        (
            "/v1/batches",
            {
                "problems": [{"prompt": f"Problem {i}"} for i in range(1001)],
                "endpoint": "sim",
                "budget": {"samples": 10_000},
            },
            413,
            "problems",
        ),
        (
            "/v1/batches",
            {"problems": [{"prompt": "x"}], "endpoint": "sim", "budget": {"samples": 2}},
            422,
            "budget.samples",
        ),
        (
            "/v1/batches",
            {
                "problems": [{"prompt": "x"}],
                "strategy": "beam_search",
                "endpoint": "sim",
                "budget": {"samples": 8},
            },
            422,
            "strategy",
        ),
    ],
)
def test_bad_input_names_the_field(
    stack: Stack, path: str, body: dict[str, Any], status: int, field: str
) -> None:
    response = stack.api.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == field


def test_another_tenants_or_unknown_batch_is_404(stack: Stack) -> None:
    response = stack.api.get("/v1/batches/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
