"""Bad input gets a 4xx problem+json naming the field, and nothing is half-written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers import wait_until
from tests.integration.conftest import Stack
from ttc_core.db import Database
from ttc_core.models import Job

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = {
    "strategy": "self_consistency",
    "endpoint": "sim",
    "prompt": "What is 6 times 7?",
    "params": {"n": 4},
}


def _with(**changes: Any) -> dict[str, Any]:
    body = {**GOOD, **changes}
    return {k: v for k, v in body.items() if v is not ...}


CASES = [
    ("unknown strategy", _with(strategy="nope"), 422, "strategy"),
    # Postgres text cannot hold NUL: named, not a server error at insert.
    ("NUL in the prompt", _with(prompt="2 + 2\x00?"), 422, "prompt"),
    (
        "NUL in a message",
        _with(prompt=..., messages=[{"role": "user", "content": "a\x00"}]),
        422,
        "messages.0.content",
    ),
    ("unknown endpoint", _with(endpoint="gpu-9"), 422, "endpoint"),
    ("reward endpoint as generator", _with(endpoint="sim-rm"), 422, "endpoint"),
    ("n=0", _with(params={"n": 0}), 422, "params.n"),
    ("n=100000", _with(params={"n": 100_000}), 422, "params.n"),
    ("n as text", _with(params={"n": "many"}), 422, "params.n"),
    ("unknown param", _with(params={"n": 4, "beams": 2}), 422, "params.beams"),
    ("temperature out of range", _with(params={"temperature": 9}), 422, "params.temperature"),
    ("prompt of wrong type", _with(prompt=42), 422, "prompt"),
    ("params of wrong type", _with(params=[1, 2]), 422, "params"),
    ("no prompt", _with(prompt=...), 422, None),
    ("unknown top-level field", _with(url="http://evil"), 422, "url"),
    ("bad regex", _with(verifier={"kind": "regex", "pattern": "("}), 422, "verifier"),
    ("regex without group", _with(verifier={"kind": "regex", "pattern": "x"}), 422, "verifier"),
    ("unknown verifier", _with(verifier={"kind": "vibes"}), 422, "verifier"),
    (
        "unknown reward endpoint",
        _with(verifier={"kind": "reward_model", "endpoint": "nope"}),
        422,
        "verifier.endpoint",
    ),
    ("best-of-n with nothing to rank by", _with(strategy="best_of_n"), 422, "reference"),
    ("negative budget", _with(budget={"max_tokens": -1}), 422, "budget.max_tokens"),
]


def _jobs(stack: Stack) -> set[str]:
    """The jobs in the database. Nodes and events belong to a job (foreign keys), so a
    refused submission that wrote nothing leaves this set as it was; counting nodes or
    events instead would see other tests' jobs still draining."""
    db = Database(stack.database_url)
    with db.session() as session:
        return set(session.scalars(select(Job.id)))


@pytest.mark.parametrize(("name", "body", "status", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_submission_is_refused_by_name(
    stack: Stack, name: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    before = _jobs(stack)
    resp = stack.api.post("/v1/jobs", json=body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["status"] == status and problem["title"]
    if field is not None:
        assert problem["field"].startswith(field), problem
    assert "Traceback" not in resp.text
    assert _jobs(stack) == before


def test_two_megabyte_prompt_is_413(stack: Stack) -> None:
    before = _jobs(stack)
    resp = stack.api.post("/v1/jobs", json=_with(prompt="x" * 2_000_000))
    assert resp.status_code == 413
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert _jobs(stack) == before


def test_malformed_json_is_422_problem(stack: Stack) -> None:
    resp = stack.api.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_unknown_job_and_node_are_404_problems(stack: Stack) -> None:
    for path in ("/v1/jobs/nope", "/v1/jobs/nope/nodes", "/v1/jobs/nope/nodes/x"):
        resp = stack.api.get(path)
        assert resp.status_code == 404
        assert resp.headers["content-type"].startswith("application/problem+json")
    assert stack.api.get("/v1/jobs", params={"cursor": "!!"}).status_code == 422


def test_openapi_is_served(stack: Stack) -> None:
    spec = stack.api.get("/openapi.json").json()
    for path in (
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/nodes",
        "/v1/jobs/{job_id}/nodes/{node_id}",
        "/v1/jobs/{job_id}/cancel",
    ):
        assert path in spec["paths"]


PRM = {"kind": "prm", "endpoint": "sim-prm"}
TREE_CASES = [
    (
        "beam width not dividing n",
        _with(strategy="beam_search", params={"n": 6, "beam_width": 4}, prm=PRM),
        "params",
    ),
    (
        "depth 0",
        _with(strategy="beam_search", params={"max_depth": 0}, prm=PRM),
        "params.max_depth",
    ),
    ("dvts depth 0", _with(strategy="dvts", params={"max_depth": 0}, prm=PRM), "params.max_depth"),
    (
        "unknown aggregation",
        _with(strategy="beam_search", prm={**PRM, "aggregation": "median"}),
        "prm",
    ),
    ("tree search without a step scorer", _with(strategy="mcts", params={}), "prm"),
    (
        "generate endpoint as PRM",
        _with(strategy="beam_search", prm={"kind": "prm", "endpoint": "sim"}),
        "prm.endpoint",
    ),
    ("unknown scorer kind", _with(strategy="tot_bfs", params={}, prm={"kind": "oracle"}), "prm"),
    ("mcts c negative", _with(strategy="mcts", params={"c": -1}, prm=PRM), "params.c"),
    ("refine rounds 0", _with(strategy="refine", params={"rounds": 0}), "params.rounds"),
    (
        "code verifier without tests",
        _with(strategy="refine", params={}, verifier={"kind": "code"}),
        "verifier",
    ),
]


@pytest.mark.parametrize(("name", "body", "field"), TREE_CASES, ids=[c[0] for c in TREE_CASES])
def test_bad_tree_search_is_refused_by_name(
    stack: Stack, name: str, body: dict[str, Any], field: str
) -> None:
    before = _jobs(stack)
    resp = stack.api.post("/v1/jobs", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["field"].startswith(field), resp.json()
    assert _jobs(stack) == before


def test_prm_answering_garbage_fails_the_job_saying_why(stack: Stack) -> None:
    resp = stack.api.post(
        "/v1/jobs",
        json=_with(
            strategy="beam_search",
            params={"n": 4, "beam_width": 2},
            prm={"kind": "prm", "endpoint": "garbage-prm", "protocol": "json"},
        ),
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    job = wait_until(
        lambda: (
            (j := stack.api.get(f"/v1/jobs/{job_id}").json())["status"] in ("failed", "succeeded")
            and j
        ),
        timeout=60,
    )
    assert job["status"] == "failed"
    assert "PRM" in job["error"] and "garbage-prm" in job["error"], job["error"]


def test_nul_in_the_url_is_refused_by_name(stack: Stack) -> None:
    for path in ("/v1/jobs/%00", "/v1/jobs/%00/nodes", "/v1/jobs/x/nodes/%00"):
        resp = stack.api.get(path)
        assert resp.status_code == 404, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
    assert stack.api.post("/v1/jobs/%00/cancel").status_code == 404
    resp = stack.api.get("/v1/jobs", params={"cursor": "a\x00"})
    assert resp.status_code == 422 and resp.json()["field"] == "cursor", resp.text
