"""Limits of event streams, through the real server: a per-key cap (429 beyond it), a
revoked key's streams ending within seconds, and a paused job's stream ending when the
job finishes or when it has been idle too long."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx
import pytest

from tests.api.conftest import SSE_IDLE_S, SSE_MAX_STREAMS, ApiStack, job_body
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

STREAM = {"Accept": "text/event-stream"}


def _paused_job(client: httpx.Client) -> str:
    job_id = client.post("/v1/jobs", json=job_body(endpoint="sim-slow")).json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/pause").status_code == 200
    return str(job_id)


def _open(client: httpx.Client, job_id: str) -> httpx.Response:
    request = client.build_request("GET", f"/v1/jobs/{job_id}/events", headers=STREAM)
    return client.send(request, stream=True)


@dataclass
class Reader:
    """Reads a stream to its end in a thread; records when it ended and what it said."""

    resp: httpx.Response
    lines: list[str] = field(default_factory=list)
    ended_at: float | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for line in self.resp.iter_lines():
                self.lines.append(line)
        except httpx.HTTPError:
            pass
        finally:
            self.ended_at = time.monotonic()

    def wait(self, timeout: float) -> float:
        self.thread.join(timeout)
        assert self.ended_at is not None, f"the stream is still open after {timeout} s"
        return self.ended_at


def test_the_stream_past_the_per_key_cap_is_429(api_stack: ApiStack) -> None:
    tenant, key = api_stack.new_key()
    client = api_stack.client(key)
    job_id = _paused_job(client)
    with ExitStack() as streams:
        for _ in range(SSE_MAX_STREAMS):
            resp = _open(client, job_id)
            streams.callback(resp.close)
            assert resp.status_code == 200, resp.read()
        over = _open(client, job_id)
        over.read()
        assert over.status_code == 429, over.text
        assert over.headers["content-type"].startswith("application/problem+json")
        assert int(over.headers["retry-after"]) >= 1
        assert "TTC_SSE_MAX_STREAMS_PER_KEY" in over.json()["detail"]
        # The cap is per key: another key of the same tenant still gets a stream, and
        # polling is never capped.
        _, other_key = api_stack.new_key(tenant)
        other = api_stack.client(other_key)
        resp = _open(other, job_id)
        assert resp.status_code == 200
        resp.close()
        assert client.get(f"/v1/jobs/{job_id}/events").status_code == 200

    # Closed streams give their places back (the server sees the disconnects).
    def reopened() -> bool:
        resp = _open(client, job_id)
        resp.close()
        return resp.status_code == 200

    wait_until(reopened, timeout=10, every=0.5)
    client.post(f"/v1/jobs/{job_id}/cancel")


def test_a_revoked_keys_stream_closes_within_5_s(api_stack: ApiStack) -> None:
    _, client, created = api_stack.tenant_client()
    job_id = _paused_job(client)
    reader = Reader(_open(client, job_id))
    assert reader.resp.status_code == 200
    wait_until(lambda: reader.lines, timeout=10)  # the stream is up (retry: line)
    assert api_stack.admin.delete(f"/v1/admin/keys/{created['id']}").status_code == 200
    revoked_at = time.monotonic()
    ended = reader.wait(timeout=15)
    assert ended - revoked_at < 5, ended - revoked_at
    assert any("revoked" in line for line in reader.lines), reader.lines
    api_stack.admin.post(f"/v1/jobs/{job_id}/cancel")


def test_a_paused_jobs_stream_ends_when_the_job_does(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    job_id = _paused_job(client)
    reader = Reader(_open(client, job_id))
    wait_until(lambda: reader.lines, timeout=10)
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    cancelled_at = time.monotonic()
    ended = reader.wait(timeout=15)
    assert ended - cancelled_at < SSE_IDLE_S / 2, "ended by the idle limit, not the job"
    assert "event: status_changed" in reader.lines
    assert any('"status":"cancelled"' in line for line in reader.lines)


def test_an_idle_stream_ends_after_the_idle_limit(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    job_id = _paused_job(client)
    opened = time.monotonic()
    reader = Reader(_open(client, job_id))
    ended = reader.wait(timeout=SSE_IDLE_S + 20)
    assert ended - opened >= SSE_IDLE_S - 1, ended - opened
    assert any(line.startswith(": idle") for line in reader.lines), reader.lines
    # The job itself is untouched: still paused, and a new stream may be opened.
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "paused"
    client.post(f"/v1/jobs/{job_id}/cancel")
