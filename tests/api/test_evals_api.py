"""Datasets and evals over the API: refusals name the field (and the row), tenants see
only their own, an eval stays within its tenant's active-job quota, cancel stops it."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.api.conftest import MAX_ACTIVE_JOBS, ApiStack
from tests.eval_support import finished, graded_rows, submit, upload
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def _refused(resp: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    assert body.get("field") == field, body
    return body


def test_dataset_refusals_name_the_rows(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    content = "\n".join(
        [
            json.dumps({"prompt": "ok", "reference": "1"}),
            json.dumps({"prompt": "no reference"}),
            "{oops",
        ]
    )
    body = _refused(client.post("/v1/datasets", json={"content": content}), 422, "content")
    assert "row 2: reference: required" in body["detail"] and "row 3: not JSON" in body["detail"]
    bad_rows = {"rows": [{"prompt": "p", "reference": "1"}, {"reference": "2"}]}
    _refused(client.post("/v1/datasets", json=bad_rows), 422, "rows.1")
    csv_text = "prompt,reference\nWhat is 2+2?,4\n"
    made = client.post("/v1/datasets", json={"content": csv_text, "format": "csv", "name": "c"})
    assert made.status_code == 201, made.text
    assert made.json()["rows"] == 1 and made.json()["preview"][0]["reference"] == "4"
    assert made.headers["location"] == f"/v1/datasets/{made.json()['id']}"
    # Another tenant's dataset is not there, and an eval cannot name it.
    _, other, _ = api_stack.tenant_client()
    assert other.get(f"/v1/datasets/{made.json()['id']}").status_code == 404
    eval_body = {
        "dataset": made.json()["id"],
        "endpoint": "sim",
        "arms": [{"strategy": "best_of_n"}],
        "grid": {"n": [1, 2]},
    }
    _refused(other.post("/v1/evals", json=eval_body), 422, "dataset")


def test_eval_refusals_name_the_field(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    dataset = upload(client, graded_rows(2, seed=1))
    base = {"dataset": dataset, "endpoint": "sim", "grid": {"n": [1, 2, 4]}}
    cases = [
        ({"arms": [{"strategy": "beam_search", "params": {"beam_width": 3}}]}, "arms.0"),
        ({"arms": [{"strategy": "best_of_m"}]}, "arms.0.strategy"),
        ({"arms": [{"strategy": "best_of_n", "params": {"nn": 1}}]}, "arms.0.params.nn"),
        ({"arms": [{"strategy": "best_of_n"}], "endpoint": "nope"}, "endpoint"),
        ({"arms": [{"strategy": "best_of_n"}], "grid": {"n": [1], "k": [2]}}, "grid"),
        ({"arms": [{"strategy": "best_of_n"}], "grid": {"n": [0, 2]}}, "grid"),
        ({"arms": [{"strategy": "best_of_n"}], "grid": {"n": [1, 1_000_000]}}, "arms.0.params.n"),
    ]
    for extra, field in cases:
        resp = client.post("/v1/evals", json={**base, **extra})
        assert resp.status_code == 422, (extra, resp.text)
        assert resp.headers["content-type"].startswith(PROBLEM)
        assert str(resp.json().get("field", "")).startswith(field), (extra, resp.json())
    assert client.get("/v1/evals/not-an-eval").status_code == 404
    body = {**base, "arms": [{"strategy": "best_of_n"}]}
    eval_id = submit(client, body)
    assert client.get(f"/v1/evals/{eval_id}/plots/pie.svg").status_code == 404
    results = client.get(f"/v1/evals/{eval_id}/results", params={"format": "xml"})
    _refused(results, 422, "format")
    _, other, _ = api_stack.tenant_client()
    assert other.get(f"/v1/evals/{eval_id}").status_code == 404
    assert other.post(f"/v1/evals/{eval_id}/cancel").status_code == 404
    assert eval_id not in [e["id"] for e in other.get("/v1/evals").json()["data"]]
    # Evals are not problem batches.
    assert client.get(f"/v1/problem-batches/{eval_id}").status_code == 404


def test_an_eval_stays_within_the_tenants_active_job_quota(api_stack: ApiStack) -> None:
    """Six jobs on a tenant allowed three active ones: they run in waves, and the
    tenant's own submissions meanwhile are refused only when the quota is really full."""
    _, client, _ = api_stack.tenant_client()
    dataset = upload(client, graded_rows(3, seed=2))
    eval_id = submit(
        client,
        {
            "dataset": dataset,
            "endpoint": "sim",
            # Different temperatures: each arm samples for itself, one job per problem.
            "arms": [
                {"strategy": "best_of_n"},
                {"strategy": "self_consistency", "params": {"temperature": 0.7}},
            ],
            "grid": {"n": [1, 2, 4]},
            "seed": 3,
        },
    )
    most = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ev = client.get(f"/v1/evals/{eval_id}", params={"curves": "false"}).json()
        active = client.get("/v1/jobs", params={"status": "running", "limit": 50}).json()["data"]
        queued = client.get("/v1/jobs", params={"status": "queued", "limit": 50}).json()["data"]
        most = max(most, len(active) + len(queued))
        if ev["status"] == "succeeded":
            break
        time.sleep(0.1)
    final = finished(client, eval_id)
    assert final["status"] == "succeeded", final
    assert final["progress"]["jobs_done"] == 6
    assert most <= MAX_ACTIVE_JOBS
    assert len(final["points"]) == 6 and all(p["problems"] == 3 for p in final["points"])


def test_cancel_stops_the_eval_and_its_jobs(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    dataset = upload(client, graded_rows(3, seed=4))
    eval_id = submit(
        client,
        {
            "dataset": dataset,
            "endpoint": "sim-slow",
            "arms": [{"strategy": "best_of_n"}],
            "grid": {"n": [1, 2]},
        },
    )
    wait_until(
        lambda: client.get(f"/v1/evals/{eval_id}/jobs").json()["data"], timeout=30, every=0.2
    )
    done = client.post(f"/v1/evals/{eval_id}/cancel")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled" and done.json()["ended_by"] == "cancelled"
    again = client.post(f"/v1/evals/{eval_id}/cancel")
    assert again.json()["status"] == "cancelled"
    jobs = client.get(f"/v1/evals/{eval_id}/jobs").json()["data"]
    assert jobs and all(j["status"] == "cancelled" for j in jobs)
    assert client.get(f"/v1/evals/{eval_id}").json()["progress"]["jobs_started"] == len(jobs)


def test_the_evals_budget_stops_it_over_the_problems_that_finished(api_stack: ApiStack) -> None:
    """Nine problems in waves of three (the tenant's quota); the first finished job spends
    more than the whole budget: nothing more starts, the live jobs are cancelled."""
    _, client, _ = api_stack.tenant_client()
    dataset = upload(client, graded_rows(9, seed=6))
    eval_id = submit(
        client,
        {
            "dataset": dataset,
            "endpoint": "sim",
            "arms": [{"strategy": "best_of_n"}],
            "grid": {"n": [1, 4, 16]},
            "budget": {"max_tokens": 100},
        },
    )
    final = finished(client, eval_id)
    assert final["status"] == "succeeded" and final["ended_by"] == "budget", final
    progress = final["progress"]
    assert progress["jobs_started"] <= MAX_ACTIVE_JOBS < progress["jobs"] == 9
    assert progress["completion_tokens"] >= 100
    points = {p["value"]: p for p in final["points"]}
    assert 1 <= points[16]["problems"] <= MAX_ACTIVE_JOBS
