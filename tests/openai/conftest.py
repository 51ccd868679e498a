"""The OpenAI-compatible front door against the real stack, all real: a fresh Postgres
with migrations, a Redis database of its own (``TTC_TEST_REDIS``), a Celery worker
process, the API server process with auth on, and the simulated endpoint over HTTP. The
clients are the official ``openai`` SDK (sync and async) and ``langchain-openai``.

Every test makes its own tenant (a key through the admin API), so each has its own rate
bucket and active-job quota.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.helpers import REDIS_BASE, fresh_postgres, wait_until
from ttc_cli.stack import run_stack
from ttc_core.service.auth import create_key
from ttc_core.store.db import Database
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems

pytestmark = pytest.mark.integration

REDIS_DB = 15
MAX_ACTIVE_JOBS = 3
MAX_N = 64
#: A problem the simulator knows: jobs over it finish with an answer.
QUESTION = gsm8k_problems()[0].question
#: An endpoint whose requests take a second: jobs that stay queued and running long
#: enough to watch (and to cancel).
SLOW = "sim-slow"
#: An endpoint whose every request fails: jobs on it fail.
BROKEN = "sim-broken"


@dataclass
class FrontDoor:
    url: str
    admin: httpx.Client
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def new_key(self) -> str:
        tenant = f"oa-{uuid.uuid4().hex[:10]}"
        resp = self.admin.post("/v1/admin/keys", json={"tenant": tenant, "name": "openai"})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["key"])

    def http(self, key: str) -> httpx.Client:
        client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        self.clients.append(client)
        return client

    def job(self, key: str, job_id: str) -> dict[str, Any]:
        resp = self.http(key).get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def wait_job(self, key: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            job = self.job(key, job_id)
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None

        return dict(wait_until(finished, timeout=timeout, every=0.1))


@pytest.fixture(scope="session")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoor]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    logs = Path(tmp_path_factory.mktemp("openai-logs"))
    sim_config = SimConfig(base_latency_s=0.01, per_token_latency_s=0.0, slots=64)
    with SimServer(sim_config) as sim, fresh_postgres() as pg_url:
        with Database(pg_url).transaction() as session:
            _, admin_key = create_key(session, "default", admin=True, name="test admin")
        with run_stack(
            database_url=pg_url,
            broker_url=broker,
            log_dir=logs,
            sim_url=sim.url,
            auth=True,
            extra_endpoints={
                SLOW: {"model": "sim-gsm8k;base_latency_s=1"},
                BROKEN: {"model": "sim-gsm8k;fail_500_rate=1", "max_retries": 0},
            },
            extra_env={
                "TTC_TENANT_MAX_ACTIVE_JOBS": str(MAX_ACTIVE_JOBS),
                "TTC_MAX_N": str(MAX_N),
            },
        ) as running:
            admin = httpx.Client(
                base_url=running.api_url,
                headers={"Authorization": f"Bearer {admin_key}"},
                timeout=30,
            )
            stack = FrontDoor(url=running.api_url, admin=admin)
            try:
                yield stack
            finally:
                for client in [admin, *stack.clients]:
                    client.close()
                for proc in running.procs:
                    if "Traceback" in proc.log():
                        print(f"--- {proc.log_path.name} ---\n{proc.log()[-4000:]}")


@pytest.fixture
def key(door: FrontDoor) -> str:
    """A fresh tenant's key."""
    return door.new_key()


@pytest.fixture
def client(door: FrontDoor, key: str) -> Iterator[openai.OpenAI]:
    # No retries: a test must see the first answer, not a retried one.
    with openai.OpenAI(base_url=door.base_url, api_key=key, max_retries=0, timeout=60) as sdk:
        yield sdk
