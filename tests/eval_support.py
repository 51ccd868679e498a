"""Helpers of the eval tests: a graded dataset, submitting an eval, waiting for it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import wait_until
from ttc_sim.tasks import graded_problems

#: n = 1, 2, 4, ..., 64: seven grid points from one run of 64 samples per problem.
DOUBLING = [1, 2, 4, 8, 16, 32, 64]
DONE = ("succeeded", "failed", "cancelled")


def graded_rows(count: int, seed: int) -> list[dict[str, Any]]:
    return [
        {"id": p.id, "prompt": p.question, "reference": p.answer}
        for p in graded_problems(count, seed=seed)
    ]


def upload(api: httpx.Client, rows: list[dict[str, Any]], name: str = "graded") -> str:
    resp = api.post("/v1/datasets", json={"name": name, "rows": rows})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def submit(api: httpx.Client, body: dict[str, Any]) -> str:
    resp = api.post("/v1/evals", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def finished(api: httpx.Client, eval_id: str, timeout: float = 180) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        ev = api.get(f"/v1/evals/{eval_id}", params={"curves": "false"}).json()
        return ev if ev["status"] in DONE else None

    wait_until(done, timeout=timeout, every=0.5)
    ev: dict[str, Any] = api.get(f"/v1/evals/{eval_id}").json()
    return ev
