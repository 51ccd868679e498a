"""Per-tenant limits (429 with ``Retry-After``) and request limits (413, and 422 naming
the field), all from settings, all through HTTP."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.api.conftest import (
    BURST,
    MAX_ACTIVE_JOBS,
    MAX_BODY_BYTES,
    MAX_DEPTH,
    MAX_N,
    MAX_PROMPT_CHARS,
    ApiStack,
    job_body,
)

pytestmark = pytest.mark.integration


def _assert_429(resp: httpx.Response) -> int:
    assert resp.status_code == 429, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    retry_after = resp.headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1, retry_after
    return int(retry_after)


def test_submission_rate_per_tenant(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    accepted = 0
    refused = None
    # Cancel each job at once, so that only the rate (not the active-job quota) binds.
    for _ in range(4 * BURST):
        resp = client.post("/v1/jobs", json=job_body())
        if resp.status_code != 202:
            refused = resp
            break
        accepted += 1
        assert client.post(f"/v1/jobs/{resp.json()['id']}/cancel").status_code == 200
    assert refused is not None, "no 429 after four bursts' worth of submissions"
    retry_after = _assert_429(refused)
    assert "rate" in refused.json()["detail"]
    # The bucket holds BURST; it refills at one a second while the loop runs, so a slow
    # machine may get a few more in, never fewer.
    assert accepted >= BURST
    assert retry_after <= 2  # one token comes back within a second at 60 per minute
    # Another tenant's bucket is untouched.
    _, other, _ = api_stack.tenant_client()
    assert other.post("/v1/jobs", json=job_body()).status_code == 202


def test_active_job_quota(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    slow = job_body(endpoint="sim-slow")
    held = []
    for _ in range(MAX_ACTIVE_JOBS):
        resp = client.post("/v1/jobs", json=slow)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        # Paused jobs count as active; pausing keeps them so however slow the machine.
        paused = client.post(f"/v1/jobs/{job_id}/pause")
        assert paused.status_code == 200, paused.text
        held.append(job_id)
    refused = client.post("/v1/jobs", json=slow)
    _assert_429(refused)
    assert "active jobs" in refused.json()["detail"]
    # A finished job frees a place.
    assert client.post(f"/v1/jobs/{held.pop()}/cancel").status_code == 200
    again = client.post("/v1/jobs", json=job_body())
    assert again.status_code == 202, again.text
    for job_id in [*held, again.json()["id"]]:
        client.post(f"/v1/jobs/{job_id}/cancel")


def test_active_job_quota_holds_under_concurrent_submissions(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    tries = 2 * MAX_ACTIVE_JOBS
    barrier = threading.Barrier(tries)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def post() -> None:
        barrier.wait()
        # Requests that take 5 s: every accepted job is still active while the others
        # are counted.
        resp = client.post("/v1/jobs", json=job_body(endpoint="sim-slow"))
        with lock:
            answers.append(resp)

    threads = [threading.Thread(target=post) for _ in range(tries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    accepted = [r.json()["id"] for r in answers if r.status_code == 202]
    refused = [r for r in answers if r.status_code != 202]
    assert len(accepted) == MAX_ACTIVE_JOBS, [r.status_code for r in answers]
    for resp in refused:
        _assert_429(resp)
    for job_id in accepted:
        client.post(f"/v1/jobs/{job_id}/cancel")


def test_body_over_the_limit_is_413(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    resp = client.post("/v1/jobs", json=job_body(prompt="x" * (MAX_BODY_BYTES + 1)))
    assert resp.status_code == 413
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert str(MAX_BODY_BYTES) in resp.json()["detail"]
    assert client.get("/v1/jobs").json()["data"] == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt"),
        ({"params": {"n": MAX_N + 1}}, "params.n"),
        (
            {
                "strategy": "beam_search",
                "params": {"n": 4, "beam_width": 2, "max_depth": MAX_DEPTH + 1},
                "prm": {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"},
            },
            "params.max_depth",
        ),
    ],
)
def test_job_limits_are_422_naming_the_field(
    api_stack: ApiStack, overrides: dict[str, object], field: str
) -> None:
    _, client, _ = api_stack.tenant_client()
    resp = client.post("/v1/jobs", json=job_body(**overrides))
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["field"] == field
    assert client.get("/v1/jobs").json()["data"] == []
