"""A tree search whose worker is stopped between steps resumes on a new worker and
finishes, with no node generated twice (counted at the simulator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import func, select

from tests.helpers import REDIS_BASE, fresh_postgres, wait_until
from ttc_cli.stack import Proc, Stack, run_stack
from ttc_core.store.db import Database
from ttc_core.store.models import Node
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import synthetic_problems

pytestmark = pytest.mark.integration

REDIS_DB = 11


@pytest.fixture
def slow_stack(tmp_path: Path) -> Iterator[tuple[Stack, SimServer, str]]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    with (
        SimServer(SimConfig(base_latency_s=0.15, per_token_latency_s=0.0, slots=64)) as sim,
        fresh_postgres() as db_url,
        run_stack(
            database_url=db_url,
            broker_url=broker,
            log_dir=tmp_path,
            sim_url=sim.url,
            # A warm shutdown lets the task in hand finish, and a task goes on with the next
            # depths for up to inline_continuation_s: off, so the stop lands between steps.
            extra_env={"TTC_INLINE_CONTINUATION_S": "0"},
        ) as stack,
    ):
        yield stack, sim, db_url


def test_stopped_worker_job_resumes_on_a_new_worker(
    slow_stack: tuple[Stack, SimServer, str], tmp_path: Path
) -> None:
    stack, sim, db_url = slow_stack
    problem = synthetic_problems(1, seed=9, steps=6)[0]
    sim.reset_metrics()
    with httpx.Client(base_url=stack.api_url, timeout=30) as api:
        resp = api.post(
            "/v1/jobs",
            json={
                "strategy": "beam_search",
                "endpoint": "sim",
                "prompt": problem.question,
                "params": {"n": 8, "beam_width": 2, "max_depth": 8},
                "prm": {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"},
                "reference": problem.answer,
                "seed": 5,
            },
        )
        job_id = resp.json()["id"]

        def job() -> dict[str, Any]:
            return api.get(f"/v1/jobs/{job_id}").json()  # type: ignore[no-any-return]

        wait_until(lambda: job()["progress"]["step"] >= 2, timeout=60, every=0.05)
        worker = next(p for p in stack.procs if "worker" in p.popen.args)
        worker.stop()  # warm shutdown: the task in hand finishes, queued ones wait
        stopped_at = job()
        assert stopped_at["status"] == "running"
        replacement = Proc(["worker", "--concurrency", "2"], stack.env, tmp_path / "w2.log")
        stack.procs.append(replacement)
        final = wait_until(
            lambda: (j := job())["status"] in ("succeeded", "failed") and j, timeout=90
        )
    assert final["status"] == "succeeded", final
    assert final["progress"]["step"] > stopped_at["progress"]["step"]
    with Database(db_url).session() as session:
        nodes = session.scalar(select(func.count(Node.id)).where(Node.job_id == job_id)) or 0
    # Every generated sample is one saved node (the root is the prompt): none twice.
    assert sim.metrics["choices_total"] == nodes - 1 == final["progress"]["nodes"]
