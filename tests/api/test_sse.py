"""Live progress over Server-Sent Events, through real HTTP: the API server process, a
Celery worker, Postgres, Redis and the simulated endpoint. A client that drops the
connection mid-job and reconnects with ``Last-Event-ID`` ends with every event once, in
order, the same list that JSON polling gives."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.helpers import REDIS_BASE, fresh_postgres, wait_until
from ttc_api.client import APIError, TTCClient
from ttc_api.schemas import EventPublic
from ttc_cli.stack import run_stack
from ttc_core.service.auth import create_key
from ttc_core.store.db import Database
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import synthetic_problems

pytestmark = pytest.mark.integration

REDIS_DB = 5
PRM = {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"}
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class Live:
    api_url: str
    key: str
    other_key: str

    def client(self, key: str | None = None) -> TTCClient:
        return TTCClient(self.api_url, api_key=key or self.key, timeout=30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    with (
        SimServer(SimConfig(base_latency_s=0.01, per_token_latency_s=0.0, slots=64)) as sim,
        fresh_postgres() as db_url,
    ):
        with Database(db_url).transaction() as session:
            _, key = create_key(session, "sse-tenant")
            _, other_key = create_key(session, "sse-other")
        with run_stack(
            database_url=db_url,
            broker_url=broker,
            log_dir=Path(tmp_path_factory.mktemp("sse-logs")),
            sim_url=sim.url,
            auth=True,
            # Each step waits a little, so that a job lasts long enough to drop mid-way.
            extra_endpoints={"sim-slow": {"model": "sim-gsm8k;base_latency_s=0.15"}},
        ) as running:
            try:
                yield Live(running.api_url, key, other_key)
            finally:
                for proc in running.procs:
                    if "Traceback" in proc.log():
                        print(f"--- {proc.log_path.name} ---\n{proc.log()[-4000:]}")


def _beam_job(client: TTCClient, seed: int, endpoint: str = "sim-slow") -> str:
    problem = synthetic_problems(1, seed=seed, steps=5)[0]
    accepted = client.submit_job(
        {
            "strategy": "beam_search",
            "endpoint": endpoint,
            "prompt": problem.question,
            "params": {"n": 4, "beam_width": 2, "max_depth": 7},
            "prm": PRM,
            "reference": problem.answer,
            "seed": seed,
        }
    )
    return accepted.id


def _read_raw(resp: httpx.Response, count: int) -> tuple[list[dict[str, str]], list[str]]:
    """Read ``count`` SSE messages off a live response; returns them and every line."""
    messages: list[dict[str, str]] = []
    lines: list[str] = []
    fields: dict[str, str] = {}
    for line in resp.iter_lines():
        lines.append(line)
        if line == "":
            if "data" in fields:
                messages.append(fields)
                if len(messages) == count:
                    break
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return messages, lines


def _polled(client: TTCClient, job_id: str) -> list[EventPublic]:
    events: list[EventPublic] = []
    after = 0
    while True:
        page = client.list_events(job_id, after=after, limit=7)  # small pages: paging too
        if not page.data:
            return events
        events.extend(page.data)
        assert page.next_cursor == str(page.data[-1].id)
        after = page.data[-1].id


def _assert_complete(streamed: list[EventPublic], polled: list[EventPublic]) -> None:
    ids = [e.id for e in streamed]
    assert ids == list(range(1, len(ids) + 1)), f"gaps or duplicates: {ids}"
    assert [e.model_dump() for e in streamed] == [e.model_dump() for e in polled]
    assert streamed[-1].kind == "status_changed" and streamed[-1].data["status"] in TERMINAL


def test_reconnect_with_last_event_id_misses_nothing(live: Live) -> None:
    with live.client() as client:
        job_id = _beam_job(client, seed=11)
        # Held from the start, so that the drop below is mid-job for certain (no timing).
        client.pause_job(job_id)
        headers = {"Authorization": f"Bearer {live.key}", "Accept": "text/event-stream"}
        with (
            httpx.Client(base_url=live.api_url, timeout=30) as http,
            http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as resp,
        ):
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["cache-control"] == "no-cache"
            raw, lines = _read_raw(resp, 2)
        assert lines[0] == "retry: 2000"
        first = [EventPublic.model_validate_json(m["data"]) for m in raw]
        for message, event in zip(raw, first, strict=True):
            assert message["id"] == str(event.id) and message["event"] == event.kind
        assert [e.id for e in first] == [1, 2]
        assert first[0].kind == "job_created"

        with closing(client.iter_events(job_id, last_event_id=first[-1].id)) as resumed:
            client.resume_job(job_id)
            streamed = first + list(resumed)
        _assert_complete(streamed, _polled(client, job_id))
        kinds = [e.kind for e in streamed]
        for kind in ("step_planned", "nodes_added", "step_done", "best_changed"):
            assert kind in kinds
        statuses = [e.data["status"] for e in streamed if e.kind == "status_changed"]
        assert "paused" in statuses and statuses[-1] == "succeeded"
        final = client.get_job(job_id)
        assert final.result is not None
        best = [e for e in streamed if e.kind == "best_changed"][-1]
        assert best.data["answer"] == final.result.answer
        assert best.data["score"] == final.result.score


def test_many_drops_while_running_still_give_every_event_once(live: Live) -> None:
    """Drop the connection after every two events while the job runs unhindered."""
    with live.client() as client:
        job_id = _beam_job(client, seed=12)
        streamed: list[EventPublic] = []
        connections = 0
        while not streamed or not (
            streamed[-1].kind == "status_changed" and streamed[-1].data["status"] in TERMINAL
        ):
            connections += 1
            last = streamed[-1].id if streamed else None
            with closing(client.iter_events(job_id, last_event_id=last)) as events:
                for count, event in enumerate(events, 1):
                    streamed.append(event)
                    if count == 2:
                        break  # closing the generator closes the connection
        assert connections >= 3
        _assert_complete(streamed, _polled(client, job_id))


def test_after_query_parameter_and_finished_job(live: Live) -> None:
    with live.client() as client:
        job_id = _beam_job(client, seed=13, endpoint="sim")
        wait_until(lambda: client.get_job(job_id).status in TERMINAL, timeout=120)
        polled = _polled(client, job_id)
        # ``after`` resumes the stream too; a finished job's stream ends by itself.
        headers = {"Authorization": f"Bearer {live.key}", "Accept": "text/event-stream"}
        resp = httpx.get(
            f"{live.api_url}/v1/jobs/{job_id}/events",
            params={"after": 2},
            headers=headers,
            timeout=30,
        )
        ids = [int(line[4:]) for line in resp.text.splitlines() if line.startswith("id: ")]
        assert ids == [e.id for e in polled[2:]]
        # Last-Event-ID wins over ``after`` (a browser reconnects to the same URL).
        tail = httpx.get(
            f"{live.api_url}/v1/jobs/{job_id}/events",
            params={"after": 1},
            headers={**headers, "Last-Event-ID": str(polled[-2].id)},
            timeout=30,
        )
        assert [line for line in tail.text.splitlines() if line.startswith("id: ")] == [
            f"id: {polled[-1].id}"
        ]
        # Reconnecting after the last event: nothing more, and the stream closes.
        assert list(client.iter_events(job_id, last_event_id=polled[-1].id)) == []
        # JSON polling honours Last-Event-ID as well.
        page = httpx.get(
            f"{live.api_url}/v1/jobs/{job_id}/events",
            headers={"Authorization": f"Bearer {live.key}", "Last-Event-ID": "3"},
            timeout=30,
        ).json()
        assert [e["id"] for e in page["data"]] == [e.id for e in polled[3:]]


def test_stream_errors_are_problems(live: Live) -> None:
    with live.client() as client:
        job_id = _beam_job(client, seed=14, endpoint="sim")
        headers = {"Authorization": f"Bearer {live.key}", "Accept": "text/event-stream"}
        missing = httpx.get(
            f"{live.api_url}/v1/jobs/no-such-job/events", headers=headers, timeout=30
        )
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        bad_id = httpx.get(
            f"{live.api_url}/v1/jobs/{job_id}/events",
            headers={**headers, "Last-Event-ID": "seven"},
            timeout=30,
        )
        assert bad_id.status_code == 422
        body: dict[str, Any] = bad_id.json()
        assert body["field"].lower() == "last-event-id"
        # Another tenant's job is a 404 on the stream as everywhere else.
        with live.client(live.other_key) as other, pytest.raises(APIError) as caught:
            list(other.iter_events(job_id))
        assert caught.value.status == 404
        wait_until(lambda: client.get_job(job_id).status in TERMINAL, timeout=120)


def test_cli_run_follow_prints_live_events(live: Live) -> None:
    problem = synthetic_problems(1, seed=15, steps=3)[0]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ttc_cli.main",
            "run",
            "--server",
            live.api_url,
            "--api-key",
            live.key,
            "--strategy",
            "beam_search",
            "--prompt",
            problem.question,
            "--reference",
            problem.answer,
            "--n",
            "4",
            "--param",
            "beam_width=2",
            "--param",
            "max_depth=5",
            "--prm",
            json.dumps(PRM),
            "--follow",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    event_lines = [line for line in proc.stderr.splitlines() if line.startswith("#")]
    assert event_lines[0].split()[:2] == ["#1", "job_created"]
    assert any(" step_done " in line for line in event_lines)
    assert event_lines[-1].split()[1] == "status_changed" and "succeeded" in event_lines[-1]
    assert json.loads(proc.stdout)["status"] == "succeeded"
