"""A small typed Python client for the ttc API (the CLI uses it).

Every route has a method that returns the API's own pydantic schema; an error answer
raises :class:`APIError` with the problem+json fields. :meth:`TTCClient.iter_events`
reads the Server-Sent Events stream and reconnects with ``Last-Event-ID`` when the
connection drops, so a caller sees every event of a job once, in order::

    with TTCClient("http://127.0.0.1:8000", api_key="ttc_...") as api:
        job = api.submit_job(spec, idempotency_key="run-42")
        for event in api.iter_events(job.id):
            print(event.id, event.kind, event.data)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from ttc_api.schemas import (
    EventPublic,
    EventsPublic,
    JobAccepted,
    JobPublic,
    JobsPublic,
    NodeDetail,
    NodesPublic,
    PruneResult,
    ReplayPublic,
)

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class APIError(Exception):
    """A problem+json answer from the server (RFC 9457 fields as attributes)."""

    def __init__(self, status: int, problem: dict[str, Any], headers: httpx.Headers | None = None):
        self.status = status
        self.problem = problem
        self.title: str = str(problem.get("title", ""))
        self.detail: str | None = problem.get("detail")
        self.field: str | None = problem.get("field")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        retry_after = headers.get("retry-after") if headers is not None else None
        self.retry_after: float | None = (
            float(retry_after) if retry_after and retry_after.isdigit() else None
        )
        field = f" [{self.field}]" if self.field else ""
        super().__init__(f"{status} {self.title}{field}: {self.detail or ''}")


def _raise_for_problem(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        problem = resp.json()
        if not isinstance(problem, dict):
            raise ValueError("not an object")
    except ValueError:
        problem = {"title": resp.reason_phrase, "detail": resp.text[:500]}
    raise APIError(resp.status_code, problem, resp.headers)


class _SSEParser:
    """Incremental ``text/event-stream`` parsing (the WHATWG rules this API needs)."""

    def __init__(self) -> None:
        self.data: list[str] = []
        self.retry_ms: int | None = None

    def new_connection(self) -> None:
        """Forget a message cut off by a dropped connection (its id was never seen)."""
        self.data = []

    def feed(self, line: str) -> str | None:
        """Take one line; returns the data of a complete message at its blank line."""
        if not line:
            if not self.data:
                return None
            data, self.data = "\n".join(self.data), []
            return data
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self.data.append(value)
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None  # id and event are inside the JSON data as well


class TTCClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self._timeout = timeout

    def __enter__(self) -> TTCClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        resp = self._http.request(method, url, **kwargs)
        _raise_for_problem(resp)
        return resp.json()

    # ------------------------------------------------------------------ jobs

    def submit_job(
        self, spec: dict[str, Any], *, idempotency_key: str | None = None
    ) -> JobAccepted:
        """Submit a job; the same ``idempotency_key`` and body return the same job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return JobAccepted.model_validate(
            self._call("POST", "/v1/jobs", json=spec, headers=headers)
        )

    def get_job(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self._call("GET", f"/v1/jobs/{job_id}"))

    def list_jobs(
        self, *, cursor: str | None = None, limit: int = 50, status: str | None = None
    ) -> JobsPublic:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if status:
            params["status"] = status
        return JobsPublic.model_validate(self._call("GET", "/v1/jobs", params=params))

    def cancel_job(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self._call("POST", f"/v1/jobs/{job_id}/cancel"))

    def pause_job(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self._call("POST", f"/v1/jobs/{job_id}/pause"))

    def resume_job(self, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self._call("POST", f"/v1/jobs/{job_id}/resume"))

    def replay_job(
        self,
        job_id: str,
        *,
        node_id: str | None = None,
        endpoint: str | None = None,
        model: str | None = None,
    ) -> JobAccepted:
        """Replay a finished job (or the subtree under ``node_id``) as a new job."""
        body = {
            k: v
            for k, v in {"node_id": node_id, "endpoint": endpoint, "model": model}.items()
            if v is not None
        }
        return JobAccepted.model_validate(
            self._call("POST", f"/v1/jobs/{job_id}/replay", json=body)
        )

    def get_replay(self, job_id: str) -> ReplayPublic:
        """Where a replay job's tree diverges from the job it replays."""
        return ReplayPublic.model_validate(self._call("GET", f"/v1/jobs/{job_id}/replay"))

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

    # ---------------------------------------------------------------- events

    def list_events(self, job_id: str, *, after: int = 0, limit: int = 200) -> EventsPublic:
        """One page of a job's events with ``id > after`` (JSON polling)."""
        params = {"after": after, "limit": limit}
        return EventsPublic.model_validate(
            self._call("GET", f"/v1/jobs/{job_id}/events", params=params)
        )

    def iter_events(
        self,
        job_id: str,
        last_event_id: int | None = None,
        *,
        max_reconnects: int = 10,
        stream_timeout: float = 60.0,
        retry_s: float = 2.0,
    ) -> Iterator[EventPublic]:
        """A job's events over SSE, from after ``last_event_id`` until the job finishes.

        A dropped connection (or a server error) reconnects with ``Last-Event-ID`` after
        the server's ``retry`` delay (``retry_s`` until it has sent one), so nothing is
        missed or repeated; up to ``max_reconnects`` failures in a row. ``stream_timeout``
        bounds a silent read (the server sends a keep-alive every 15 s). A 4xx answer
        raises :class:`APIError`.
        """
        parser = _SSEParser()
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = str(last_event_id)
            received = 0
            finished = False
            parser.new_connection()
            try:
                with self._http.stream(
                    "GET",
                    f"/v1/jobs/{job_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(self._timeout, read=stream_timeout),
                ) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        _raise_for_problem(resp)
                    for line in resp.iter_lines():
                        data = parser.feed(line)
                        if data is None:
                            continue
                        event = EventPublic.model_validate_json(data)
                        last_event_id = event.id
                        received += 1
                        failures = 0
                        finished = (
                            event.kind == "status_changed" and event.data.get("status") in TERMINAL
                        )
                        yield event
            except APIError as exc:
                if exc.status < 500:
                    raise
                failures += 1
            except httpx.TransportError:
                failures += 1
            else:
                # A clean end: the server closes after the job's final status event, and
                # at once (sending nothing) when the job had finished before.
                if finished or received == 0:
                    return
            if failures > max_reconnects:
                raise ConnectionError(f"event stream of {job_id}: {failures} failures in a row")
            delay = retry_s if parser.retry_ms is None else parser.retry_ms / 1000
            time.sleep(delay if failures else 0)

    # ----------------------------------------------------------------- nodes

    def list_nodes(
        self,
        job_id: str,
        *,
        parent_id: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        **filters: Any,
    ) -> NodesPublic:
        """Nodes of a job: children of ``parent_id``, or all breadth-first. ``filters``
        pass through as query parameters (``under``, ``status``, ``min_score``...)."""
        params: dict[str, Any] = {"limit": limit}
        if parent_id:
            params["parent_id"] = parent_id
        if cursor:
            params["cursor"] = cursor
        params.update({k: v for k, v in filters.items() if v is not None})
        return NodesPublic.model_validate(
            self._call("GET", f"/v1/jobs/{job_id}/nodes", params=params)
        )

    def children(
        self, job_id: str, node_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> NodesPublic:
        """One page of a node's children, in child order."""
        return self.list_nodes(job_id, parent_id=node_id, cursor=cursor, limit=limit)

    def get_node(self, job_id: str, node_id: str) -> NodeDetail:
        """One node with its path from the root."""
        return NodeDetail.model_validate(self._call("GET", f"/v1/jobs/{job_id}/nodes/{node_id}"))

    def prune_node(self, job_id: str, node_id: str) -> PruneResult:
        return PruneResult.model_validate(
            self._call("POST", f"/v1/jobs/{job_id}/nodes/{node_id}/prune")
        )

    def expand_node(self, job_id: str, node_id: str, k: int = 4) -> JobPublic:
        return JobPublic.model_validate(
            self._call("POST", f"/v1/jobs/{job_id}/nodes/{node_id}/expand", json={"k": k})
        )

    # --------------------------------------------------------- datasets and evals

    def upload_dataset(self, content: str, *, fmt: str = "jsonl", name: str = "") -> Any:
        """Upload a JSONL or CSV file's text; returns the dataset (``id``, ``rows``...)."""
        body = {"name": name, "format": fmt, "content": content}
        return self._call("POST", "/v1/datasets", json=body)

    def submit_eval(self, spec: dict[str, Any]) -> Any:
        """Start an eval; returns ``{"id", "status", "location", "jobs", "started"}``."""
        return self._call("POST", "/v1/evals", json=spec)

    def get_eval(self, eval_id: str, *, curves: bool = True) -> Any:
        """An eval's progress, points, comparisons and difficulty breakdown (``curves``
        False: its progress only, cheap to poll)."""
        params = None if curves else {"curves": "false"}
        return self._call("GET", f"/v1/evals/{eval_id}", params=params)

    def cancel_eval(self, eval_id: str) -> Any:
        return self._call("POST", f"/v1/evals/{eval_id}/cancel")

    def eval_results(self, eval_id: str, *, fmt: str = "csv", part: str = "points") -> str:
        """An export as text: ``fmt`` csv or jsonl; ``part`` points, problems or nodes."""
        resp = self._http.get(f"/v1/evals/{eval_id}/results", params={"format": fmt, "part": part})
        _raise_for_problem(resp)
        return resp.text

    def eval_plot(self, eval_id: str, name: str, fmt: str = "png") -> bytes:
        resp = self._http.get(f"/v1/evals/{eval_id}/plots/{name}.{fmt}")
        _raise_for_problem(resp)
        return resp.content
