"""Bad input gets a 4xx problem+json naming the field, and nothing is half-written."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import select, text

from tests.helpers import wait_until
from tests.integration.conftest import Stack
from ttc_core.store.db import Database
from ttc_core.store.models import Job

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


# ------------------------------------------------ what cannot be stored, at the door

#: Request bodies as raw JSON text: an encoder would refuse (or rewrite) what they carry.
_PROMPT = '"prompt": "What is 6 times 7?"'
_BASE = '"strategy": "self_consistency", "endpoint": "sim"'
UNSTORABLE_BODIES = [
    (
        "lone surrogate in params.stop",
        f'{{{_BASE}, {_PROMPT}, "params": {{"n": 2, "stop": ["\\ud800"]}}}}',
        "params.stop.0",
    ),
    ("lone surrogate in the prompt", f'{{{_BASE}, "prompt": "6 x 7 \\udfff?"}}', "prompt"),
    (
        "lone surrogate in a message",
        f'{{{_BASE}, "messages": [{{"role": "user", "content": "hi \\ud83d"}}]}}',
        "messages.0.content",
    ),
    (
        "lone surrogate in a verifier field",
        f'{{{_BASE}, {_PROMPT}, "verifier": {{"kind": "regex", "pattern": "(\\\\d+)\\ud800"}}}}',
        "verifier.pattern",
    ),
    (
        "lone surrogate in the webhook url",
        f'{{{_BASE}, {_PROMPT}, "webhook": {{"url": "https://example.com/\\ud800"}}}}',
        "webhook.url",
    ),
    ("lone surrogate in a key", f'{{{_BASE}, {_PROMPT}, "params": {{"\\ud800": 1}}}}', "params"),
    (
        "NUL in params.stop",
        f'{{{_BASE}, {_PROMPT}, "params": {{"stop": ["a\\u0000"]}}}}',
        "params.stop.0",
    ),
    (
        "Infinity in budget.max_cost",
        f'{{{_BASE}, {_PROMPT}, "budget": {{"max_cost": Infinity}}}}',
        "budget.max_cost",
    ),
    (
        "NaN in budget.max_cost",
        f'{{{_BASE}, {_PROMPT}, "budget": {{"max_cost": NaN}}}}',
        "budget.max_cost",
    ),
    (
        "1e999 in budget.max_seconds",
        f'{{{_BASE}, {_PROMPT}, "budget": {{"max_seconds": 1e999}}}}',
        "budget.max_seconds",
    ),
    (
        "-Infinity in params.temperature",
        f'{{{_BASE}, {_PROMPT}, "params": {{"temperature": -Infinity}}}}',
        "params.temperature",
    ),
    (
        "an integer past 64 bits",
        f'{{{_BASE}, {_PROMPT}, "budget": {{"max_tokens": {2**64}}}}}',
        "budget.max_tokens",
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "field"), UNSTORABLE_BODIES, ids=[c[0] for c in UNSTORABLE_BODIES]
)
def test_unstorable_input_is_refused_by_name(
    stack: Stack, name: str, body: str, field: str
) -> None:
    before = _jobs(stack)
    resp = stack.api.post(
        "/v1/jobs", content=body.encode(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["field"] == field, resp.json()
    assert _jobs(stack) == before


def test_unstorable_input_is_refused_on_every_route(stack: Stack) -> None:
    """The check sits in front of every JSON body, not only job submissions."""
    for path, body, field in (
        (
            "/v1/problem-batches",
            '{"endpoint": "sim", "problems": [{"prompt": "\\ud800"}], "budget": {"samples": 8}}',
            "problems.0.prompt",
        ),
        (
            "/v1/problem-batches",
            '{"endpoint": "sim", "problems": [{"prompt": "1+1"}], "budget": {"samples": NaN}}',
            "budget.samples",
        ),
        ("/v1/jobs/x/nodes/y/expand", '{"k": Infinity}', "k"),
    ):
        resp = stack.api.post(path, content=body, headers={"content-type": "application/json"})
        assert resp.status_code == 422, (path, resp.text)
        assert resp.json()["field"] == field, resp.json()


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_out_of_range_cursors_and_event_ids_are_refused_by_name(stack: Stack) -> None:
    job_id = stack.api.post("/v1/jobs", json=GOOD).json()["id"]
    too_big = str(2**63)
    checks = [
        (f"/v1/jobs/{job_id}/events", {"after": too_big}, {}, "after"),
        # Event ids are 32-bit: past that, no event can follow.
        (f"/v1/jobs/{job_id}/events", {"after": str(2**31)}, {}, "after"),
        (f"/v1/jobs/{job_id}/events", {}, {"Last-Event-ID": too_big}, "Last-Event-ID"),
        (f"/v1/jobs/{job_id}/events", {}, {"Last-Event-ID": "garbage"}, "Last-Event-ID"),
        (
            f"/v1/jobs/{job_id}/events",
            {},
            {"Last-Event-ID": too_big, "Accept": "text/event-stream"},
            "Last-Event-ID",
        ),
        (f"/v1/jobs/{job_id}/nodes", {"cursor": _cursor('[Infinity, "a"]')}, {}, "cursor"),
        (f"/v1/jobs/{job_id}/nodes", {"cursor": _cursor('[1e30, "a"]')}, {}, "cursor"),
        (f"/v1/jobs/{job_id}/nodes", {"cursor": _cursor(f'[{2**70}, "a"]')}, {}, "cursor"),
        (
            f"/v1/jobs/{job_id}/nodes",
            {"parent_id": f"{job_id}:root", "cursor": _cursor("[NaN]")},
            {},
            "cursor",
        ),
        (f"/v1/jobs/{job_id}/nodes", {"min_score": "inf"}, {}, "min_score"),
        ("/v1/problem-batches", {"cursor": _cursor("[1, 2]")}, {}, "cursor"),
        ("/v1/problem-batches", {"cursor": _cursor('["not a time", "x"]')}, {}, "cursor"),
        ("/v1/problem-batches", {"cursor": "%%%"}, {}, "cursor"),
        ("/v1/jobs", {"cursor": _cursor('["2026-01-01T00:00:00", 7]')}, {}, "cursor"),
        ("/v1/jobs", {"cursor": _cursor('["2026-01-01T00:00:00", "\\ud800"]')}, {}, "cursor"),
    ]
    for path, params, headers, field in checks:
        resp = stack.api.get(path, params=params, headers=headers)
        assert resp.status_code == 422, (path, params, headers, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["field"] == field, (path, params, resp.json())


def test_a_stored_row_with_odd_data_does_not_break_the_lists(stack: Stack) -> None:
    """A row written before the door was shut (or by a model's output) holding a lone
    surrogate or params that no longer parse: every list and page still answers,
    showing U+FFFD in place of what cannot be encoded."""
    odd = stack.api.post("/v1/jobs", json=GOOD).json()["id"]
    broken = stack.api.post("/v1/jobs", json=GOOD).json()["id"]
    wait_until(lambda: stack.api.get(f"/v1/jobs/{odd}").json()["status"] == "succeeded")
    db = Database(stack.database_url)
    with db.transaction() as session:
        # Postgres ``json`` keeps the escape as written; reading it back gives Python a
        # lone surrogate (what a job submitted before this check stored).
        session.execute(
            text(
                "UPDATE jobs SET params = CAST(:p AS json), result = CAST(:r AS json) "
                "WHERE id = :id"
            ),
            {
                "id": odd,
                "p": '{"n": 4, "stop": ["\\ud800"]}',
                "r": '{"answer": "4\\udc00", "text": "x", "score": 0.5, "node_id": null}',
            },
        )
        session.execute(
            text("UPDATE jobs SET params = CAST(:p AS json) WHERE id = :id"),
            {"id": broken, "p": '{"n": "many", "beams": []}'},
        )
        session.execute(
            text("UPDATE job_events SET data = CAST(:d AS json) WHERE job_id = :id AND seq = 1"),
            {"id": odd, "d": '{"strategy": "\\ud800"}'},
        )
        session.execute(
            text("UPDATE nodes SET meta = CAST(:m AS json) WHERE job_id = :id"),
            {"id": odd, "m": '{"note": "\\udfff"}'},
        )
    listed = stack.api.get("/v1/jobs", params={"limit": 200})
    assert listed.status_code == 200, listed.text
    by_id = {j["id"]: j for j in listed.json()["data"]}
    assert by_id[odd]["params"]["stop"] == ["\ufffd"]
    assert by_id[odd]["result"]["answer"] == "4\ufffd"
    # Unparseable params plan nothing; a job that already succeeded planned what it drew.
    b = by_id[broken]
    planned = b["progress"]["nodes"] if b["status"] == "succeeded" else None
    assert b["progress"]["planned_samples"] == planned, b
    for path in (
        f"/v1/jobs/{odd}",
        f"/v1/jobs/{odd}/events",
        f"/v1/jobs/{odd}/nodes",
        f"/v1/jobs/{broken}",
        "/ui/api/jobs",
        f"/ui/jobs/{odd}",
        f"/ui/jobs/{odd}/tree",
        "/ui/jobs",
    ):
        resp = stack.api.get(path)
        assert resp.status_code == 200, (path, resp.text[:500])
    events = stack.api.get(f"/v1/jobs/{odd}/events", headers={"Accept": "text/event-stream"})
    assert events.status_code == 200 and "\ufffd" in events.text
