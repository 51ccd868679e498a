"""Fault suite: kill -9 the worker at random moments, start a new one each time.

Every job reaches a terminal state; no node is saved twice; and the simulator generated
no more sequences than the nodes saved plus the sequences in flight at each kill (a
request cut off by a kill is the only work paid for twice).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import func, select

from tests.helpers import REDIS_BASE, fresh_postgres, wait_until
from ttc_cli.stack import Proc, Stack, run_stack
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import Settings
from ttc_core.store.db import Database
from ttc_core.store.models import ExpansionBatch, Node
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems, synthetic_problems

pytestmark = pytest.mark.integration

REDIS_DB = 10
KILLS = 5
FAST_RECOVERY = {
    "TTC_BATCH_LEASE_S": "4",
    "TTC_STALL_S": "2",
    "TTC_REAPER_INTERVAL_S": "0.5",
    "TTC_EXPAND_BATCH_SAMPLES": "64",
    # Every kill here lands on a batch in flight, often the same one: more attempts than
    # kills, so the poison-batch cap does not end the search.
    "TTC_MAX_BATCH_ATTEMPTS": "8",
    # A killed worker's reserved but unclaimed messages come back from the broker only
    # after its visibility timeout: count them lost sooner (the reaper sends one each).
    "TTC_BATCH_MESSAGE_LOST_S": "6",
}


@pytest.fixture
def faulty_stack(tmp_path: Path) -> Iterator[tuple[Stack, SimServer, str]]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    with (
        SimServer(SimConfig(base_latency_s=0.1, per_token_latency_s=0.0, slots=16)) as sim,
        fresh_postgres() as db_url,
        run_stack(
            database_url=db_url,
            broker_url=broker,
            log_dir=tmp_path,
            sim_url=sim.url,
            extra_env=FAST_RECOVERY,
            beat=True,
        ) as stack,
    ):
        yield stack, sim, db_url


def _kill_and_replace(
    stack: Stack, sim: SimServer, tmp_path: Path, round_: int, stored: int, lost_before: int
) -> int:
    """SIGKILL the live worker; returns the samples it loses: those the simulator had in
    flight, and those answered but not yet written (``stored`` samples of the job are in
    the database; ``lost_before`` were lost at earlier kills and so stay unstored)."""
    worker = next(p for p in stack.procs if "worker" in p.popen.args and not p.closed)
    # Sent and not answered yet: generating in a slot, or queued for one (the simulator,
    # like a GPU server, finishes what it was sent even when the client is gone). And
    # answered, on the way to the database (a write queued behind the batch's current
    # one: ``ttc_core.engine.group_commit``).
    metrics = sim.metrics
    in_flight = int(metrics["in_flight_sequences"]) + int(metrics["queued_sequences"])
    unwritten = max(0, int(metrics["choices_total"]) - stored - lost_before)
    worker.kill()
    stack.procs.append(
        Proc(["worker", "--concurrency", "2"], stack.env, tmp_path / f"worker{round_}.log")
    )
    return in_flight + unwritten


def _stored_samples(db_url: str, job_id: str) -> int:
    with Database(db_url).session() as session:
        count = session.scalar(
            select(func.count(Node.id)).where(Node.job_id == job_id, Node.parent_id.is_not(None))
        )
    return int(count or 0)


def _run_with_kills(
    stack: Stack, sim: SimServer, db_url: str, tmp_path: Path, body: dict[str, Any]
) -> None:
    rng = random.Random(7)
    sim.reset_metrics()
    with httpx.Client(base_url=stack.api_url, timeout=30) as api:
        job_id = api.post("/v1/jobs", json=body).json()["id"]

        def job() -> dict[str, Any]:
            return api.get(f"/v1/jobs/{job_id}").json()  # type: ignore[no-any-return]

        lost = 0
        kills = 0
        for round_ in range(KILLS):
            # Kill at a random moment while the (new) worker has requests at the simulator,
            # so that every kill cuts generation off (the in-flight count is then exact up
            # to a response already on its way back).
            time.sleep(rng.uniform(0.0, 0.5))
            wait_until(
                lambda: (
                    sim.metrics["in_flight_sequences"] > 0
                    or job()["status"] in ("succeeded", "failed", "cancelled")
                ),
                timeout=60,
                every=0.01,
            )
            if job()["status"] in ("succeeded", "failed", "cancelled"):
                break
            lost += _kill_and_replace(
                stack, sim, tmp_path, round_, _stored_samples(db_url, job_id), lost
            )
            kills += 1
        final = wait_until(
            lambda: (j := job())["status"] in ("succeeded", "failed", "cancelled") and j,
            timeout=180,
            every=0.2,
        )
    assert final["status"] == "succeeded", (final["error"], final["result"])
    assert kills == KILLS, f"the job finished after {kills} kills; make it longer"
    print(f"{body['strategy']}: {kills} kills, {lost} sequences in flight at the kills")
    with Database(db_url).session() as session:
        nodes = session.scalar(select(func.count(Node.id)).where(Node.job_id == job_id)) or 0
        pairs = session.execute(
            select(Node.parent_id, Node.child_index).where(Node.job_id == job_id)
        ).all()
        batches = session.execute(
            select(ExpansionBatch.step, ExpansionBatch.attempts, ExpansionBatch.requests)
            .where(ExpansionBatch.job_id == job_id)
            .order_by(ExpansionBatch.step)
        ).all()
    assert len(set(pairs)) == len(pairs) == nodes  # no (parent, child index) twice
    assert max(b.attempts for b in batches) >= 2, "no batch was ever interrupted"
    generated = int(sim.metrics["choices_total"])
    assert generated <= (nodes - 1) + lost, (generated, nodes, lost)


def test_best_of_n_survives_worker_kills(
    faulty_stack: tuple[Stack, SimServer, str], tmp_path: Path
) -> None:
    stack, sim, db_url = faulty_stack
    problem = gsm8k_problems()[8]
    body = {
        "strategy": "best_of_n",
        "endpoint": "sim",
        "prompt": problem.question,
        "params": {"n": 512},
        "reference": problem.answer,
        "seed": 3,
    }
    _run_with_kills(stack, sim, db_url, tmp_path, body)


def test_beam_search_survives_worker_kills(
    faulty_stack: tuple[Stack, SimServer, str], tmp_path: Path
) -> None:
    stack, sim, db_url = faulty_stack
    problem = synthetic_problems(1, seed=12, steps=6)[0]
    body = {
        "strategy": "beam_search",
        "endpoint": "sim",
        "prompt": problem.question,
        "params": {"n": 16, "beam_width": 4, "max_depth": 8},
        "prm": {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"},
        "reference": problem.answer,
        "seed": 4,
    }
    _run_with_kills(stack, sim, db_url, tmp_path, body)


def test_committed_job_that_was_never_enqueued_starts_anyway(
    faulty_stack: tuple[Stack, SimServer, str],
) -> None:
    """The API died between commit and enqueue: the reaper starts the job."""
    stack, _sim, db_url = faulty_stack
    settings = Settings(database_url=db_url, endpoints=json.loads(stack.env["TTC_ENDPOINTS"]))
    problem = gsm8k_problems()[2]
    with Database(db_url).transaction() as session:
        job = create_job(
            session,
            JobSpec(
                strategy="self_consistency",
                endpoint="sim",
                prompt=problem.question,
                params={"n": 8},
                reference=problem.answer,
            ),
            settings,
            tenant="default",
        )
    with httpx.Client(base_url=stack.api_url, timeout=30) as api:
        final = wait_until(
            lambda: (j := api.get(f"/v1/jobs/{job.id}").json())["status"] == "succeeded" and j,
            timeout=60,
            every=0.2,
        )
        kinds = [e["kind"] for e in api.get(f"/v1/jobs/{job.id}/events").json()["data"]]
    assert final["progress"]["nodes"] == 8
    assert "reaped" in kinds
