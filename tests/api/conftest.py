"""The public API with auth on, all real: a fresh Postgres database with migrations, a
Redis of its own (``TTC_TEST_REDIS``), a Celery worker process, the API server process
and the simulated endpoint over HTTP.

Limits are set low enough to reach in a test: every test makes its own tenants (keys
through the admin API), and each tenant has its own bucket and quota, so tests do not
spend each other's allowance.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.helpers import REDIS_BASE, fresh_postgres
from ttc_cli.stack import run_stack
from ttc_core.service.auth import create_key
from ttc_core.store.db import Database
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems

pytestmark = pytest.mark.integration

REDIS_DB = 12
#: Submissions per tenant and minute: a bucket of 10 (ten seconds' worth), refilling 1/s.
RATE_PER_MINUTE = 60
BURST = 10
MAX_ACTIVE_JOBS = 3
MAX_BODY_BYTES = 65_536
MAX_PROMPT_CHARS = 4_000
MAX_N = 64
MAX_DEPTH = 16
#: Open event streams per key; a stream with nothing to send ends after SSE_IDLE_S.
SSE_MAX_STREAMS = 20
SSE_IDLE_S = 8

#: A problem the simulator knows, so jobs finish with an answer.
QUESTION = gsm8k_problems()[0].question


def job_body(**overrides: Any) -> dict[str, Any]:
    """A small, valid job (self-consistency over 2 samples)."""
    return {
        "strategy": "self_consistency",
        "endpoint": "sim",
        "prompt": QUESTION,
        "params": {"n": 2, "max_tokens": 64},
        **overrides,
    }


@dataclass
class ApiStack:
    url: str
    database_url: str
    admin: httpx.Client
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        """A client sending ``key`` as a Bearer token (or nothing)."""
        if key is not None:
            headers = {"Authorization": f"Bearer {key}", **headers}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self.clients.append(client)
        return client

    def new_key(self, tenant: str | None = None, *, admin: bool = False) -> tuple[str, str]:
        """A key for ``tenant`` (a fresh one when None), made through the admin API.
        Returns (tenant, key)."""
        tenant = tenant or f"t-{uuid.uuid4().hex[:10]}"
        resp = self.admin.post("/v1/admin/keys", json={"tenant": tenant, "admin": admin})
        assert resp.status_code == 201, resp.text
        return tenant, resp.json()["key"]

    def tenant_client(self, tenant: str | None = None) -> tuple[str, httpx.Client, dict[str, Any]]:
        """A fresh tenant, its client and its key's public record."""
        tenant = tenant or f"t-{uuid.uuid4().hex[:10]}"
        resp = self.admin.post("/v1/admin/keys", json={"tenant": tenant, "name": "test"})
        assert resp.status_code == 201, resp.text
        created = resp.json()
        return tenant, self.client(created["key"]), created


@pytest.fixture(scope="session")
def api_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    logs = Path(tmp_path_factory.mktemp("api-logs"))
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
            # Requests that take 5 s: jobs that stay active long enough to pause them.
            extra_endpoints={"sim-slow": {"model": "sim-gsm8k;base_latency_s=5"}},
            extra_env={
                "TTC_TENANT_RATE_PER_MINUTE": str(RATE_PER_MINUTE),
                "TTC_TENANT_MAX_ACTIVE_JOBS": str(MAX_ACTIVE_JOBS),
                "TTC_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
                "TTC_MAX_PROMPT_CHARS": str(MAX_PROMPT_CHARS),
                "TTC_MAX_N": str(MAX_N),
                "TTC_MAX_DEPTH": str(MAX_DEPTH),
                "TTC_SSE_MAX_STREAMS_PER_KEY": str(SSE_MAX_STREAMS),
                "TTC_SSE_IDLE_S": str(SSE_IDLE_S),
                "TTC_SSE_AUTH_CHECK_S": "1",
            },
        ) as running:
            admin = httpx.Client(
                base_url=running.api_url,
                headers={"Authorization": f"Bearer {admin_key}"},
                timeout=30,
            )
            stack = ApiStack(url=running.api_url, database_url=pg_url, admin=admin)
            try:
                yield stack
            finally:
                for client in [admin, *stack.clients]:
                    client.close()
                for proc in running.procs:
                    if "Traceback" in proc.log():
                        print(f"--- {proc.log_path.name} ---\n{proc.log()[-4000:]}")
