"""Batches are tenant-scoped like jobs: with API keys on, another tenant's batch is a 404
and is left out of its listing, and so are the batch's jobs (a real stack: Postgres with
migrations, Redis, a Celery worker, the API server and the simulator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.helpers import REDIS_BASE, fresh_postgres, wait_until
from ttc_cli.stack import run_stack
from ttc_core.service.auth import create_key
from ttc_core.store.db import Database
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import graded_problems

pytestmark = pytest.mark.integration

REDIS_DB = 10


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """(API url, alice's key, bob's key)."""
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    with (
        SimServer(SimConfig(base_latency_s=0.005, per_token_latency_s=0.0)) as sim,
        fresh_postgres() as url,
        run_stack(
            database_url=url,
            broker_url=broker,
            log_dir=Path(tmp_path_factory.mktemp("logs")),
            sim_url=sim.url,
            auth=True,
        ) as stack,
    ):
        db = Database(url)
        with db.transaction() as session:
            _, alice = create_key(session, "alice")
            _, bob = create_key(session, "bob")
        db.engine.dispose()
        yield stack.api_url, alice, bob


def test_another_tenants_batch_is_404(tenants: tuple[str, str, str]) -> None:
    url, alice_key, bob_key = tenants
    alice = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {alice_key}"})
    bob = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {bob_key}"})
    problems = graded_problems(3, seed=2)
    body: dict[str, Any] = {
        "problems": [{"prompt": p.question, "reference": p.answer} for p in problems],
        "endpoint": "sim",
        "verifier": {"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"},
        "budget": {"samples": 24},
    }
    with alice, bob:
        accepted = alice.post("/v1/problem-batches", json=body)
        assert accepted.status_code == 202, accepted.text
        location = accepted.headers["Location"]
        batch = wait_until(
            lambda: (b := alice.get(location).json())["status"] == "succeeded" and b,
            timeout=90,
        )
        assert batch["summary"]["arms"]["adaptive"]["samples"] <= 24
        hidden = bob.get(location)
        assert hidden.status_code == 404
        assert hidden.headers["content-type"].startswith("application/problem+json")
        assert bob.get("/v1/problem-batches").json()["data"] == []
        assert [b["id"] for b in alice.get("/v1/problem-batches").json()["data"]] == [batch["id"]]
        # The batch's jobs are the tenant's jobs: invisible to the other tenant too.
        job_id = batch["problems"][0]["adaptive"]["job_id"]
        assert alice.get(f"/v1/jobs/{job_id}").status_code == 200
        assert bob.get(f"/v1/jobs/{job_id}").status_code == 404
