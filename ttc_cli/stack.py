"""Run the distributed stack natively (no Docker): the simulated endpoint, Celery
workers and the API as child processes over a given Postgres and Redis.

Used by ``ttc stack``, the integration tests and the benchmarks, so that all three start
the very commands that docker-compose.yml runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

PG_ADMIN_URL = os.environ.get("TTC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.log_path.name} exited:\n{proc.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not come up in {timeout}s")
        time.sleep(0.1)


class Proc:
    """A ``ttc`` subcommand in a child process, its output in a log file."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "ttc_cli.main", *args],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        self._log.close()

    @property
    def closed(self) -> bool:
        return self._log.closed

    def kill(self) -> None:
        """SIGKILL the whole process group (a Celery worker and its pool children)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=15)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Stack:
    api_url: str
    sim_url: str
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)


@contextlib.contextmanager
def run_stack(
    *,
    database_url: str,
    broker_url: str,
    log_dir: Path,
    sim_args: Sequence[str] = (),
    sim_url: str | None = None,
    worker_args: Sequence[str] = ("--concurrency", "2", "--pool", "prefork"),
    endpoint_overrides: dict[str, object] | None = None,
    extra_endpoints: dict[str, dict[str, object]] | None = None,
    extra_env: dict[str, str] | None = None,
    beat: bool = False,
    auth: bool = False,
) -> Iterator[Stack]:
    """Start sim (unless ``sim_url`` is given), one Celery worker, the API and, with
    ``beat``, Celery beat (the reaper's schedule). Without ``auth`` the API runs with API
    keys off (every caller an admin of tenant ``default``, said loudly in its log); with
    it, callers need keys (``ttc_core.auth.create_key`` on ``database_url``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[Proc] = []
    try:
        if sim_url is None:
            sim_port = free_port()
            sim = Proc(["sim", "--port", str(sim_port), *sim_args], {}, log_dir / "sim.log")
            procs.append(sim)
            sim_url = f"http://127.0.0.1:{sim_port}"
            wait_http(sim_url + "/health", proc=sim)
        endpoints = {
            "sim": {
                "base_url": sim_url + "/v1",
                "model": "sim-gsm8k",
                **(endpoint_overrides or {}),
            },
            "sim-rm": {"base_url": sim_url, "model": "sim-rm", "kind": "reward"},
            "sim-prm": {"base_url": sim_url, "model": "sim-prm", "kind": "reward"},
        }
        for name, overrides in (extra_endpoints or {}).items():
            endpoints[name] = {"base_url": sim_url + "/v1", "model": "sim-gsm8k", **overrides}
        env = {
            "TTC_DATABASE_URL": database_url,
            "TTC_BROKER_URL": broker_url,
            "TTC_EXECUTOR": "celery",
            "TTC_ENDPOINTS": json.dumps(endpoints),
            **(extra_env or {}),
        }
        worker = Proc(["worker", *worker_args], env, log_dir / "worker.log")
        procs.append(worker)
        if beat:
            schedule = str(log_dir / "celerybeat-schedule")
            procs.append(Proc(["beat", "--schedule", schedule], env, log_dir / "beat.log"))
        api_port = free_port()
        auth_env = (
            {} if auth else {"TTC_AUTH_ENABLED": "false", "TTC_ALLOW_INSECURE_NO_AUTH": "true"}
        )
        api = Proc(
            ["serve", "--port", str(api_port), "--log-level", "warning"],
            {**auth_env, **env},
            log_dir / "api.log",
        )
        procs.append(api)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_http(api_url + "/health", proc=api)
        yield Stack(api_url=api_url, sim_url=sim_url, env=env, procs=procs)
    finally:
        for proc in reversed(procs):
            if not proc.closed:
                proc.stop()


@contextlib.contextmanager
def fresh_postgres(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A new, empty Postgres database with migrations applied; dropped afterwards."""
    from ttc_cli.migrate import upgrade

    name = f"ttc_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    try:
        yield url
    finally:
        from ttc_core.db import dispose_engine

        dispose_engine(url)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
