"""Fault suite: the broker and the database restart under a running job.

- Redis (no persistence: every queued message is lost) restarts mid-job: the workers
  reconnect, the reaper re-enqueues what was lost, the job finishes.
- Postgres restarts mid-job: connections die, the tasks retry on fresh ones, the reaper
  picks up whatever stalled, the job finishes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.helpers import fresh_postgres, wait_until
from ttc_cli.stack import Stack, free_port, run_stack
from ttc_core.store.db import Database
from ttc_core.store.models import Node
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import synthetic_problems

# Serial (``make test`` runs these after the parallel part): a restart frees the server's
# port for a second, and a test in the other xdist process can take it meanwhile.
pytestmark = [pytest.mark.integration, pytest.mark.serial]

FAST_RECOVERY = {
    "TTC_BATCH_LEASE_S": "2",
    "TTC_STALL_S": "2",
    "TTC_REAPER_INTERVAL_S": "0.5",
    "TTC_MAX_BATCH_ATTEMPTS": "10",
    # A killed worker's reserved but unclaimed messages come back from the broker only
    # after its visibility timeout: count them lost sooner (the reaper sends one each).
    "TTC_BATCH_MESSAGE_LOST_S": "6",
}


class RedisServer:
    """A private Redis on its own port, restartable (no persistence, like production's
    broker after a crash without AOF)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(
            lambda: (
                subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"], capture_output=True
                ).stdout.strip()
                == b"PONG"
            ),
            timeout=20,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(SimConfig(base_latency_s=0.1, per_token_latency_s=0.0, slots=16)) as s:
        yield s


def _beam_body(seed: int) -> dict[str, Any]:
    problem = synthetic_problems(1, seed=seed, steps=6)[0]
    return {
        "strategy": "beam_search",
        "endpoint": "sim",
        "prompt": problem.question,
        "params": {"n": 16, "beam_width": 4, "max_depth": 8},
        "prm": {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"},
        "reference": problem.answer,
        "seed": seed,
    }


def _run(stack: Stack, db_url: str, body: dict[str, Any], disrupt: Any) -> dict[str, Any]:
    with httpx.Client(base_url=stack.api_url, timeout=30) as api:
        job_id = api.post("/v1/jobs", json=body).json()["id"]

        def job() -> dict[str, Any]:
            return api.get(f"/v1/jobs/{job_id}").json()  # type: ignore[no-any-return]

        wait_until(lambda: job()["progress"]["step"] >= 2, timeout=60, every=0.05)
        disrupt()
        final = wait_until(
            lambda: (
                (j := _safe(job)) is not None
                and j["status"] in ("succeeded", "failed", "cancelled")
                and j
            ),
            timeout=180,
            every=0.5,
        )
    assert final["status"] == "succeeded", (final["error"], final["result"])
    with Database(db_url).session() as session:
        pairs = session.execute(
            select(Node.parent_id, Node.child_index).where(Node.job_id == job_id)
        ).all()
        count = session.scalar(select(func.count(Node.id)).where(Node.job_id == job_id))
    assert len(set(pairs)) == len(pairs) == count
    return final


def _safe(fetch: Any) -> Any:
    try:
        return fetch()
    except (httpx.HTTPError, ValueError):
        return None  # the API may answer 500 while its database restarts


def test_job_finishes_after_redis_restarts_and_loses_its_queue(
    sim: SimServer, tmp_path: Path
) -> None:
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    try:
        with (
            fresh_postgres() as db_url,
            run_stack(
                database_url=db_url,
                broker_url=redis_server.url,
                log_dir=tmp_path / "logs",
                sim_url=sim.url,
                extra_env=FAST_RECOVERY,
                beat=True,
            ) as stack,
        ):

            def restart() -> None:
                redis_server.stop()
                time.sleep(1.0)
                redis_server.start()

            _run(stack, db_url, _beam_body(41), restart)
    finally:
        redis_server.stop()


class PostgresServer:
    """A private Postgres cluster (``initdb`` + ``pg_ctl`` in a temporary directory, on a
    free port), so that restarting it never disturbs the machine's shared server. Runs as
    the ``postgres`` user when the tests run as root (initdb refuses root)."""

    def __init__(self, workdir: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            pytest.skip("no PostgreSQL server binaries")
        self.bin = bins[-1]
        self.port = free_port()
        self.data = workdir / "pgdata"
        self.log = workdir / "pg.log"
        self.workdir = workdir

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, timeout=120, capture_output=True)

    def init(self) -> None:
        self.workdir.chmod(0o777)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        options = f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def test_job_finishes_after_postgres_restarts(sim: SimServer, tmp_path: Path) -> None:
    from tests.helpers import REDIS_BASE

    # Not under pytest's tmp_path: that is private to root, and Postgres runs as postgres.
    pgdir = Path(tempfile.mkdtemp(prefix="ttc-pg-"))
    pg = PostgresServer(pgdir)
    pg.init()
    pg.start()
    broker = f"{REDIS_BASE}/9"
    try:
        with (
            fresh_postgres(pg.admin_url) as db_url,
            run_stack(
                database_url=db_url,
                broker_url=broker,
                log_dir=tmp_path / "logs",
                sim_url=sim.url,
                extra_env=FAST_RECOVERY,
                beat=True,
            ) as stack,
        ):

            def restart() -> None:
                pg.stop()
                time.sleep(1.0)
                pg.start()

            _run(stack, db_url, _beam_body(42), restart)
    finally:
        with contextlib.suppress(Exception):
            pg.stop()
        shutil.rmtree(pgdir, ignore_errors=True)
