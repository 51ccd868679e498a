"""The distributed stack for integration tests, all real: a fresh Postgres database
with migrations applied, Redis, a Celery worker process (2 prefork children), the API
server process and the simulated endpoint over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.helpers import REDIS_BASE, fresh_postgres
from ttc_cli.stack import run_stack
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer

pytestmark = pytest.mark.integration

REDIS_DB = 13


@dataclass
class Stack:
    api_url: str
    sim: SimServer
    database_url: str
    env: dict[str, str]
    api: httpx.Client

    def sim_metrics(self) -> dict[str, object]:
        return httpx.get(self.sim.url + "/metrics", timeout=5).json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    with SimServer(SimConfig(base_latency_s=0.01, per_token_latency_s=0.0, slots=64)) as server:
        yield server


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def stack(sim: SimServer, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    logs = Path(tmp_path_factory.mktemp("logs"))
    with (
        run_stack(
            database_url=pg_url,
            broker_url=broker,
            log_dir=logs,
            sim_url=sim.url,
            endpoint_overrides={"max_concurrency": 32},
            # One request per sample, at most 3 in flight across every worker process.
            extra_endpoints={
                "sim-narrow": {"max_concurrency": 3, "max_n_per_request": 1},
                # 20% of requests answer 500 and 10% 429 (Retry-After 0.05 s).
                "sim-faulty": {
                    "model": "sim-gsm8k;fail_500_rate=0.2;fail_429_rate=0.1;retry_after_s=0.05",
                    "max_retries": 8,
                    "max_n_per_request": 2,
                },
                # A PRM that answers 200 with a body that is not JSON, every time.
                "garbage-prm": {
                    "base_url": sim.url,
                    "model": "sim-prm;malformed_rate=1",
                    "kind": "reward",
                    "max_retries": 1,
                },
            },
            extra_env={"TTC_EXPAND_BATCH_SAMPLES": "8"},
        ) as running,
        httpx.Client(base_url=running.api_url, timeout=30) as client,
    ):
        try:
            yield Stack(running.api_url, sim, pg_url, running.env, client)
        finally:
            for proc in running.procs:
                if "Traceback" in proc.log():
                    print(f"--- {proc.log_path.name} ---\n{proc.log()[-4000:]}")
