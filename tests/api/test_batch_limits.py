"""Problem batches go through the tenant's limits like jobs: a batch of k problems is k
submissions for the rate and k active jobs for the quota (429 with ``Retry-After``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import BURST, MAX_ACTIVE_JOBS, QUESTION, ApiStack, job_body

pytestmark = pytest.mark.integration


def batch_body(problems: int, endpoint: str = "sim-slow", **extra: Any) -> dict[str, Any]:
    return {
        "problems": [{"prompt": QUESTION, "reference": "72"} for _ in range(problems)],
        "endpoint": endpoint,
        "strategy": "self_consistency",
        "budget": {"samples": 8 * problems},
        "probe": 2,
        "rounds": 1,
        **extra,
    }


def _assert_429(resp: httpx.Response) -> None:
    assert resp.status_code == 429, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.headers["retry-after"].isdigit() and int(resp.headers["retry-after"]) >= 1


def _cancel_all(client: httpx.Client) -> None:
    for job in client.get("/v1/jobs", params={"limit": 200}).json()["data"]:
        if job["status"] not in ("succeeded", "failed", "cancelled"):
            client.post(f"/v1/jobs/{job['id']}/cancel")


def test_a_batch_over_the_active_job_quota_is_429(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    over = client.post("/v1/problem-batches", json=batch_body(MAX_ACTIVE_JOBS + 1))
    _assert_429(over)
    assert "active jobs" in over.json()["detail"]
    # Nothing was written: no batch, no job.
    assert client.get("/v1/problem-batches").json()["data"] == []
    assert client.get("/v1/jobs").json()["data"] == []
    # Two arms count twice: 2 problems compared with the uniform split are 4 jobs.
    paired = client.post("/v1/problem-batches", json=batch_body(2, compare_uniform=True))
    _assert_429(paired)
    # Within the quota it goes; its jobs then count against later submissions.
    accepted = client.post("/v1/problem-batches", json=batch_body(MAX_ACTIVE_JOBS - 1))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["jobs"] == MAX_ACTIVE_JOBS - 1
    plain = client.post("/v1/jobs", json=job_body(endpoint="sim-slow"))
    assert plain.status_code == 202, plain.text
    _assert_429(client.post("/v1/problem-batches", json=batch_body(1)))
    _assert_429(client.post("/v1/jobs", json=job_body()))
    _cancel_all(client)


def test_a_batch_spends_one_rate_token_per_problem(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    size = MAX_ACTIVE_JOBS  # the most the quota lets in at once
    accepted = 0
    refused = None
    for _ in range(4 * BURST):
        resp = client.post("/v1/problem-batches", json=batch_body(size, endpoint="sim"))
        if resp.status_code != 202:
            refused = resp
            break
        accepted += size
        _cancel_all(client)  # only the rate binds, not the quota
    assert refused is not None, "no 429 after four bursts' worth of batch problems"
    _assert_429(refused)
    assert "rate" in refused.json()["detail"]
    # A bucket of BURST tokens (refilling one a second while the loop runs): counted per
    # problem, it runs dry after about BURST / size batches, not BURST of them.
    assert BURST - size < accepted < 3 * BURST, accepted
