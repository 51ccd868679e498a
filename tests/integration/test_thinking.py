"""Extended thinking through the distributed stack (REST -> Postgres -> Celery worker ->
simulator): a ``think`` job and a best-of-N job whose samples think first, with thinking
tokens counted apart and capped; and bad thinking options refused by name."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tests.helpers import wait_until
from tests.integration.conftest import Stack
from ttc_core.store.db import Database
from ttc_core.store.models import Job, JobEvent, Node
from ttc_sim.tasks import gsm8k_problems

pytestmark = pytest.mark.integration

PROBLEM = gsm8k_problems()[11]


def _wait_terminal(stack: Stack, job_id: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = stack.api.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in {"succeeded", "failed", "cancelled"} else None

    return wait_until(done, timeout=timeout, every=0.1)  # type: ignore[no-any-return]


def _children(stack: Stack, job_id: str, parent_id: str) -> list[dict[str, Any]]:
    page = stack.api.get(f"/v1/jobs/{job_id}/nodes", params={"parent_id": parent_id}).json()
    return page["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("strategy", "params", "thinking", "samples"),
    [
        ("think", {}, {"min_tokens": 300, "max_tokens": 500}, 1),
        ("best_of_n", {"n": 5}, {"min_tokens": 100, "max_tokens": 160}, 5),
    ],
)
def test_thinking_jobs_run_on_a_worker(
    stack: Stack, strategy: str, params: dict[str, Any], thinking: dict[str, Any], samples: int
) -> None:
    resp = stack.api.post(
        "/v1/jobs",
        json={
            "strategy": strategy,
            "endpoint": "sim",
            "prompt": PROBLEM.question,
            "params": params,
            "reference": PROBLEM.answer,
            "thinking": thinking,
            "seed": 11,
        },
    )
    assert resp.status_code == 202, resp.text
    job = _wait_terminal(stack, resp.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["thinking"]["min_tokens"] == thinking["min_tokens"]

    thoughts = _children(stack, job["id"], job["root_node_id"])
    assert len(thoughts) == samples and {t["role"] for t in thoughts} == {"think"}
    answers = [a for t in thoughts for a in _children(stack, job["id"], t["id"])]
    assert len(answers) == samples and {a["role"] for a in answers} == {"sample"}
    for thought in thoughts:
        # the cap is never exceeded; the minimum is kept unless the cap came first
        assert thought["completion_tokens"] <= thinking["max_tokens"]
        assert (
            thought["completion_tokens"] >= thinking["min_tokens"]
            or thought["meta"]["closed_by"] == "cap"
        )
    usage = job["usage"]
    assert usage["thinking_tokens"] == sum(t["completion_tokens"] for t in thoughts)
    assert usage["completion_tokens"] == usage["thinking_tokens"] + sum(
        a["completion_tokens"] for a in answers
    )
    assert usage["thinking_tokens"] <= samples * thinking["max_tokens"]
    # the answer is an answer node; its path runs through its thought
    chosen = stack.api.get(f"/v1/jobs/{job['id']}/nodes/{job['result']['node_id']}").json()
    assert chosen["role"] == "sample" and [n["role"] for n in chosen["path"]] == [
        "root",
        "think",
        "sample",
    ]
    assert "<think>" not in job["result"]["text"]


GOOD: dict[str, Any] = {
    "strategy": "think",
    "endpoint": "sim",
    "prompt": "What is 6 times 7?",
}

BAD = [
    ("negative minimum", {"min_tokens": -1}, "thinking.min_tokens"),
    ("negative budget", {"budget_tokens": -100}, "thinking.budget_tokens"),
    ("zero cap", {"max_tokens": 0}, "thinking.max_tokens"),
    ("absurd cap", {"max_tokens": 10**9}, "thinking.max_tokens"),
    ("absurd budget", {"budget_tokens": 10**12}, "thinking.budget_tokens"),
    ("absurd minimum", {"min_tokens": 10**9}, "thinking.min_tokens"),
    ("minimum over the cap", {"min_tokens": 800, "max_tokens": 400}, "thinking.min_tokens"),
    ("unknown effort", {"effort": "extreme"}, "thinking.effort"),
    ("negative forcings", {"max_forcings": -2}, "thinking.max_forcings"),
    ("budget as text", {"budget_tokens": "lots"}, "thinking.budget_tokens"),
    ("unknown field", {"wait_word": "Hmm"}, "thinking.wait_word"),
]


def _counts(stack: Stack) -> tuple[int, int, int]:
    db = Database(stack.database_url)
    with db.session() as session:
        return (
            session.scalar(select(func.count(Job.id))) or 0,
            session.scalar(select(func.count(Node.id))) or 0,
            session.scalar(select(func.count(JobEvent.id))) or 0,
        )


@pytest.mark.parametrize(("name", "thinking", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_thinking_is_refused_by_name(
    stack: Stack, name: str, thinking: dict[str, Any], field: str
) -> None:
    before = _counts(stack)
    for strategy in ("think", "self_consistency"):
        resp = stack.api.post(
            "/v1/jobs", json={**GOOD, "strategy": strategy, "params": {}, "thinking": thinking}
        )
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        problem = resp.json()
        assert problem["status"] == 422 and problem["field"] == field, problem
        assert "Traceback" not in resp.text
    assert _counts(stack) == before
