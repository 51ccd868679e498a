"""A replica of a fleet killed (by PID) in the middle of a job: the job finishes on the
others without generating any node twice, and the replica comes back into rotation once
it is restarted on the same port.

Real ``ttc_sim`` processes for the replicas, ttc's real engine (SQLite, the in-process
executor) and its real inference client; the process reward model is an in-thread
simulator (it is not part of the fleet).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from ttc_cli.migrate import upgrade
from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.executor import run_job
from ttc_core.inference.health import Health
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Job, Node
from ttc_sim.runner import SimServer
from ttc_sim.tasks import synthetic_problems

#: Each sequence takes 0.1 s, so a job of 4 depths lasts about half a second.
SIM_ARGS = ["--base-latency-s", "0.1", "--per-token-latency-s", "0", "--log-level", "warning"]
PROBLEMS = synthetic_problems(2, seed=5, steps=4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sim(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ttc_sim", "--port", str(port), *SIM_ARGS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"ttc_sim on port {port} did not start")


def metrics(port: int) -> dict[str, Any]:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).json()


def spec(problem_index: int, seed: int) -> JobSpec:
    problem = PROBLEMS[problem_index]
    return JobSpec(
        strategy="beam_search",
        endpoint="fleet",
        prompt=problem.question,
        params={"n": 16, "beam_width": 4, "max_depth": 4, "max_tokens": 96},
        verifier={"kind": "math"},
        prm={"kind": "prm", "endpoint": "prm", "protocol": "json", "aggregation": "min"},
        reference=problem.answer,
        seed=seed,
    )


def tree(db: Database, job_id: str) -> list[tuple[int, int, str, str]]:
    """(depth, child index, status, text) of every node, with no key seen twice."""
    with db.session() as session:
        nodes = session.query(Node).filter(Node.job_id == job_id).all()
        keys = Counter((n.parent_id, n.child_index) for n in nodes)
        assert max(keys.values()) == 1, "a node was saved twice"
        return sorted((n.depth, n.child_index, n.status, n.text) for n in nodes)


@pytest.fixture
def replicas() -> Any:
    ports = [free_port() for _ in range(3)]
    procs = {port: start_sim(port) for port in ports}
    yield ports, procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def test_a_killed_replica_is_worked_around_and_comes_back(
    tmp_path: Path, replicas: tuple[list[int], dict[int, subprocess.Popen[bytes]]]
) -> None:
    ports, procs = replicas
    victim = ports[0]
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    upgrade(url)
    db = Database(url)
    with SimServer(base_latency_s=0.0, reward_latency_s=0.002) as prm:
        settings = Settings(
            database_url=url,
            endpoints={
                "fleet": EndpointConfig(
                    base_urls=[f"http://127.0.0.1:{p}/v1" for p in ports],
                    model="sim-gsm8k",
                    server="generic",
                    max_retries=6,
                    timeout_s=10,
                    health_interval_s=0.2,
                    health_fall=2,
                    health_rise=2,
                    breaker_cooldown_s=0.5,
                    routing={"policy": "round_robin"},
                ),
                "prm": EndpointConfig(base_url=prm.url, model="sim-prm", kind="reward"),
            },
        )

        def submit(index: int, seed: int) -> str:
            with db.transaction() as session:
                return create_job(session, spec(index, seed), settings, tenant="t").id

        killed_id, after_id = submit(0, 7), submit(1, 8)
        seen: dict[str, Any] = {}

        async def kill_when_busy() -> None:
            async with httpx.AsyncClient() as http:
                while True:
                    m = (await http.get(f"http://127.0.0.1:{victim}/metrics")).json()
                    if m["choices_total"] >= 4 and m["in_flight_sequences"] > 0:
                        break
                    await asyncio.sleep(0.01)
            seen["victim_choices"] = m["choices_total"]
            seen["victim_in_flight"] = m["in_flight_sequences"]
            os.kill(procs[victim].pid, signal.SIGKILL)
            procs[victim].wait(timeout=10)

        async def scenario() -> None:
            ctx = EngineContext(settings=settings, db=db, http=make_http_client())
            try:
                await asyncio.gather(
                    run_job(ctx, killed_id), asyncio.wait_for(kill_when_busy(), 60)
                )
                fleet = ctx.inference("fleet").fleet
                dead = next(r for r in fleet.replicas if f":{victim}/" in r.url)
                # Out of rotation: by the requests that failed on it, or else by the
                # health probes (the job may end before they come round).
                for _ in range(settings.endpoints["fleet"].health_fall):
                    if dead.health.state is Health.UP:
                        await fleet.probe(dead)
                seen["state_after_kill"] = dead.health.state
                seen["reason"] = dead.health.reason
                seen["survivor_choices"] = sum(metrics(p)["choices_total"] for p in ports[1:])
                # Back on the same port: the next job's probes bring it into rotation.
                procs[victim] = await asyncio.to_thread(start_sim, victim)
                await run_job(ctx, after_id)
                seen["state_at_end"] = dead.health.state
            finally:
                await ctx.aclose()

        asyncio.run(scenario())

    with db.session() as session:
        jobs = {j.id: j for j in session.query(Job).all()}
        assert {j.status for j in jobs.values()} == {"succeeded"}, [
            (j.status, j.error) for j in jobs.values()
        ]
    killed = tree(db, killed_id)
    assert {status for _, _, status, _ in killed} == {"done"}  # none failed or missing
    generated = sum(1 for depth, *_ in killed if depth > 0)
    # No node generated twice: what the replicas generated for the job is its nodes,
    # plus at most what the victim had in flight when it died (lost, so generated again).
    assert seen["state_after_kill"] is not Health.UP, seen
    # Refused, dropped, or (on a starved machine) no connection in time: the server is gone.
    assert any(why in seen["reason"] for why in ("refused", "dropped", "could not connect")), seen
    # (The victim's count is read just before the kill: what it finished in the last
    # milliseconds is counted by no one, which only lowers the total.)
    total = seen["survivor_choices"] + seen["victim_choices"]
    assert total <= generated + seen["victim_in_flight"], (seen, generated)
    assert seen["survivor_choices"] > 0
    assert seen["state_at_end"] is Health.UP
    assert metrics(victim)["choices_total"] > 0  # it served the last job again
