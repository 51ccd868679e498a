"""A small typed Python client for the ttc API (the CLI uses it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from ttc_api.schemas import JobAccepted, JobPublic, NodeDetail, NodesPublic

TERMINAL = {"succeeded", "failed", "cancelled"}


class APIError(Exception):
    """A problem+json answer from the server."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        field = f" [{problem['field']}]" if problem.get("field") else ""
        super().__init__(f"{status} {problem.get('title', '')}{field}: {problem.get('detail', '')}")


class TTCClient:
    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 30.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> TTCClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _check(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            try:
                problem = resp.json()
            except ValueError:
                problem = {"title": resp.reason_phrase, "detail": resp.text[:500]}
            raise APIError(resp.status_code, problem)
        return resp.json()

    def submit_job(self, spec: dict[str, Any]) -> JobAccepted:
        return JobAccepted.model_validate(self._check(self._http.post("/v1/jobs", json=spec)))

    def get_job(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self._check(self._http.get(f"/v1/jobs/{job_id}")))

    def cancel_job(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self._check(self._http.post(f"/v1/jobs/{job_id}/cancel")))

    def list_nodes(
        self,
        job_id: str,
        *,
        parent_id: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> NodesPublic:
        params: dict[str, Any] = {"limit": limit}
        if parent_id:
            params["parent_id"] = parent_id
        if cursor:
            params["cursor"] = cursor
        resp = self._http.get(f"/v1/jobs/{job_id}/nodes", params=params)
        return NodesPublic.model_validate(self._check(resp))

    def get_node(self, job_id: str, node_id: str) -> NodeDetail:
        resp = self._http.get(f"/v1/jobs/{job_id}/nodes/{node_id}")
        return NodeDetail.model_validate(self._check(resp))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 3600.0,
        poll_s: float = 0.25,
        on_progress: Callable[[JobPublic], None] | None = None,
    ) -> JobPublic:
        """Poll until the job is terminal."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.status in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout}s")
            time.sleep(poll_s)
