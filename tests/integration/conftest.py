"""The distributed stack for integration tests, all real: a fresh Postgres database
with migrations applied, Redis, a Celery worker process (2 prefork children), the API
server process and the simulated endpoint over HTTP."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.helpers import REDIS_BASE, Proc, free_port, fresh_postgres, wait_http
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
    endpoints = {
        "sim": {"base_url": sim.base_url, "model": "sim-gsm8k", "max_concurrency": 32},
        "sim-rm": {"base_url": sim.url, "model": "sim-rm", "kind": "reward"},
    }
    env = {
        "TTC_DATABASE_URL": pg_url,
        "TTC_BROKER_URL": broker,
        "TTC_EXECUTOR": "celery",
        "TTC_ENDPOINTS": json.dumps(endpoints),
        "TTC_EXPAND_BATCH_SAMPLES": "8",
    }
    logs = Path(tmp_path_factory.mktemp("logs"))
    port = free_port()
    worker = Proc(["worker", "--concurrency", "2", "--pool", "prefork"], env, logs / "worker.log")
    api = Proc(["serve", "--port", str(port), "--log-level", "warning"], env, logs / "api.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health")
        with httpx.Client(base_url=url, timeout=30) as client:
            yield Stack(url, sim, pg_url, env, client)
    finally:
        api.stop()
        worker.stop()
        for proc in (api, worker):
            text = proc.log()
            if "Traceback" in text:
                print(f"--- {proc.log_path.name} ---\n{text[-4000:]}")
        shutil.rmtree(logs, ignore_errors=True)
