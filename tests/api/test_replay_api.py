"""The expansion cache and replay over the public API, in-process (embedded executor,
SQLite, auth on) against the simulator: usage and metrics of cache hits, the replay
routes, their problem+json errors naming the field, and tenant scoping."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import serve_in_thread, wait_until
from ttc_api.app import create_app
from ttc_cli.main import main
from ttc_cli.migrate import upgrade
from ttc_core.service.auth import create_key
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems

PROBLEM = gsm8k_problems()[2]
JOB = {
    "strategy": "best_of_n",
    "endpoint": "sim",
    "prompt": PROBLEM.question,
    "reference": PROBLEM.answer,
    "verifier": {"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"},
    "params": {"n": 6, "max_tokens": 256},
    "seed": 2024,
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SimServer, list[str]]]:
    """The API's URL, the simulator, and keys of two tenants (a, b)."""
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('db')) / 'ttc.db'}"
    upgrade(url)
    with Database(url).transaction() as session:
        keys = [create_key(session, tenant)[1] for tenant in ("a", "b")]
    with SimServer(SimConfig(base_latency_s=0.002, per_token_latency_s=0.0, slots=64)) as sim:
        settings = Settings(
            database_url=url,
            executor="local",
            endpoints={
                "sim": EndpointConfig(base_url=sim.base_url, model="sim-gsm8k"),
                "sim-other": EndpointConfig(
                    base_url=sim.base_url, model="sim-gsm8k;sample_accuracy=0.2"
                ),
                # Requests that take 1 s: a job still running when it is replayed.
                "sim-slow": EndpointConfig(
                    base_url=sim.base_url, model="sim-gsm8k;base_latency_s=1"
                ),
            },
        )
        with serve_in_thread(create_app(settings)) as base:
            yield base, sim, keys


def client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def finished(c: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job: dict[str, Any] = c.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def submit(c: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = c.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return finished(c, resp.json()["id"])


def metric(c: httpx.Client, name: str) -> float:
    total = 0.0
    for line in c.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and 'tenant="a"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def assert_problem(resp: httpx.Response, status: int, field: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    if field is not None:
        assert resp.json()["field"] == field, resp.json()


def test_cache_hits_in_usage_and_metrics(api: tuple[str, SimServer, list[str]]) -> None:
    base, sim, (key_a, _) = api
    with client(base, key_a) as a:
        first = submit(a, JOB)
        assert first["cache"] == "use"
        hits_before = metric(a, "ttc_expansion_cache_hits_total")
        saved_before = metric(a, "ttc_expansion_cache_tokens_saved_total")
        requests = sim.metrics["requests_total"]
        second = submit(a, JOB)
        time.sleep(0.05)
        assert sim.metrics["requests_total"] == requests
        assert second["result"]["answer"] == first["result"]["answer"]
        usage = second["usage"]
        assert usage["requests"] == 0 and usage["completion_tokens"] == 0
        assert usage["cache"]["hits"] == 6
        assert usage["cache"]["completion_tokens_saved"] == first["usage"]["completion_tokens"]
        assert usage["cache"]["prompt_tokens_saved"] == first["usage"]["prompt_tokens"]
        assert usage["cache"]["requests_saved"] == first["usage"]["requests"]
        assert metric(a, "ttc_expansion_cache_hits_total") - hits_before == 6
        assert metric(a, "ttc_expansion_cache_tokens_saved_total") - saved_before == (
            first["usage"]["prompt_tokens"] + first["usage"]["completion_tokens"]
        )
        nodes = a.get(f"/v1/jobs/{second['id']}/nodes", params={"limit": 50}).json()["data"]
        samples = [n for n in nodes if n["depth"] == 1]
        assert len(samples) == 6 and all(n["cached"] and n["request_id"] for n in samples)


def test_replay_routes(api: tuple[str, SimServer, list[str]]) -> None:
    base, sim, (key_a, key_b) = api
    with client(base, key_a) as a, client(base, key_b) as b:
        original = submit(a, {**JOB, "seed": 5})
        resp = a.post(f"/v1/jobs/{original['id']}/replay", json={"endpoint": "sim-other"})
        assert resp.status_code == 202, resp.text
        assert resp.headers["Location"] == f"/v1/jobs/{resp.json()['id']}"
        replayed = finished(a, resp.json()["id"])
        assert replayed["replay_of"] == {
            "source_job_id": original["id"],
            "node_id": original["root_node_id"],
        }
        assert replayed["endpoint"] == "sim-other" and replayed["cache"] == "refresh"
        report = a.get(f"/v1/jobs/{replayed['id']}/replay").json()
        assert report["source_job_id"] == original["id"]
        assert report["model"] == "sim-gsm8k;sample_accuracy=0.2"
        assert report["nodes_compared"] == 7 and report["paths"] == 6
        assert len(report["path_divergences"]) == 6
        diverged = report["paths"] - report["paths_reproduced"]
        assert sum(d["paths"] for d in report["divergences"]) == diverged

        # A model on the same endpoint; with no body, the job's own endpoint and model.
        resp = a.post(f"/v1/jobs/{original['id']}/replay", json={"model": "sim-gsm8k"})
        assert resp.status_code == 202, resp.text
        same = a.get(f"/v1/jobs/{finished(a, resp.json()['id'])['id']}/replay").json()
        assert same["nodes_reproduced"] == same["nodes_compared"] == 7
        assert a.post(f"/v1/jobs/{original['id']}/replay").status_code == 202

        # Errors: problem+json naming the field.
        url = f"/v1/jobs/{original['id']}/replay"
        assert_problem(a.post(url, json={"endpoint": "nope"}), 422, "endpoint")
        assert_problem(a.post(url, json={"node_id": "not-a-node"}), 422, "node_id")
        assert_problem(a.post(url, json={"model": "bad\u0001name"}), 422, "model")
        assert_problem(a.post(url, json={"mode": "x"}), 422, "mode")
        assert_problem(a.post(url, json={"node_id": 3}), 422, "node_id")
        assert_problem(a.post(url, json={"node_id": "a\u0000b"}), 422)
        assert_problem(a.post(url, json={"endpoint": "x" * 129}), 422, "endpoint")
        assert_problem(a.get(f"/v1/jobs/{original['id']}/replay"), 404)  # not a replay
        # Another tenant's job is a 404 both ways.
        assert_problem(b.post(url, json={}), 404)
        assert_problem(b.get(f"/v1/jobs/{replayed['id']}/replay"), 404)
        # A job still running cannot be replayed.
        slow = a.post("/v1/jobs", json={**JOB, "endpoint": "sim-slow"})
        assert slow.status_code == 202, slow.text
        running = slow.json()["id"]
        assert_problem(a.post(f"/v1/jobs/{running}/replay", json={}), 409)
        a.post(f"/v1/jobs/{running}/cancel")
        assert finished(a, running)["status"] == "cancelled"
        wait_until(lambda: sim.metrics["in_flight_requests"] == 0, timeout=10, every=0.05)


def test_cli_replay_prints_the_divergences(
    api: tuple[str, SimServer, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, _, (key_a, _) = api
    with client(base, key_a) as a:
        original = submit(a, {**JOB, "seed": 6})
    args = ["replay", original["id"], "--server", base, "--api-key", key_a]
    assert main([*args, "--endpoint", "sim-other"]) == 0
    out = capsys.readouterr().out
    assert f"of {original['id']} on sim-other (sim-gsm8k;sample_accuracy=0.2): succeeded" in out
    assert "nodes reproduced: " in out and "/7; paths reproduced: " in out
    assert "diverges at " in out or "no divergence" in out
    assert main(args) == 0
    assert "nodes reproduced: 7/7; paths reproduced: 6/6" in capsys.readouterr().out
    assert (
        main(
            ["replay", "00000000-0000-4000-8000-000000000000", "--server", base, "--api-key", key_a]
        )
        == 2
    )
    assert "refused: " in capsys.readouterr().err
