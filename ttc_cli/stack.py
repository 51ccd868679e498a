"""Run the distributed stack natively (no Docker): the simulated endpoint, Celery
workers, the API and optionally beat and Flower as child processes over a given Postgres
and Redis.

Used by ``ttc stack``, the integration tests and the benchmarks, so that all three start
the very commands that docker-compose.yml runs.

Children: each runs in a process group of its own (a Celery worker's pool children are
in its group), dies with the stack (``PR_SET_PDEATHSIG``: even a SIGKILLed stack leaves
nothing behind), and is stopped group by group on SIGTERM or SIGINT.
"""

from __future__ import annotations

import contextlib
import ctypes
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
from typing import Any

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


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the stack process dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Proc:
    """A ``ttc`` subcommand in a child process (its own process group), its output in a
    log file."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "ttc_cli.main", *args],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a Celery worker stops its pool), then SIGKILL to whatever is left of
        the process group."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # orphans of the group, if any
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
    #: The worker node's metrics (all its processes added up).
    worker_metrics_url: str | None = None
    flower_url: str | None = None


@contextlib.contextmanager
def run_stack(
    *,
    database_url: str,
    broker_url: str,
    log_dir: Path,
    sim_args: Sequence[str] = (),
    sim_url: str | None = None,
    worker_args: Sequence[str] = ("--concurrency", "2", "--pool", "prefork"),
    worker_processes: int = 1,
    endpoint_overrides: dict[str, object] | None = None,
    extra_endpoints: dict[str, dict[str, object]] | None = None,
    extra_env: dict[str, str] | None = None,
    beat: bool = False,
    auth: bool = False,
    flower: bool = False,
    api_host: str = "127.0.0.1",
    api_port: int = 0,
    flower_port: int = 0,
    api_log_level: str = "warning",
) -> Iterator[Stack]:
    """Start sim (unless ``sim_url`` is given), ``worker_processes`` Celery workers (one
    by default), the API and, with
    ``beat``, Celery beat (the reaper's schedule), with ``flower`` Flower (and the worker
    events and remote control it needs). Without ``auth`` the API runs with API keys off
    (every caller an admin of tenant ``default``, said loudly in its log); with it,
    callers need keys (``ttc_core.service.auth.create_key`` on ``database_url``). Ports 0 are
    chosen free."""
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
        flower_port = flower_port or free_port()
        flower_url = f"http://127.0.0.1:{flower_port}" if flower else None
        env = {
            "TTC_DATABASE_URL": database_url,
            "TTC_BROKER_URL": broker_url,
            "TTC_EXECUTOR": "celery",
            "TTC_ENDPOINTS": json.dumps(endpoints),
            "TTC_LOG_FORMAT": "json",
            **({"TTC_FLOWER_URL": flower_url} if flower_url else {}),
            # What Flower needs to see workers and tasks (see ttc_worker/app.py).
            **(
                {"TTC_CELERY_EVENTS": "true", "TTC_CELERY_REMOTE_CONTROL": "true"} if flower else {}
            ),
            **(extra_env or {}),
        }
        metrics_port = free_port()
        worker_env = {
            **env,
            "TTC_WORKER_METRICS_PORT": str(metrics_port),
            "TTC_WORKER_METRICS_HOST": "127.0.0.1",
            "PROMETHEUS_MULTIPROC_DIR": str(log_dir / "worker-metrics"),
        }
        worker = Proc(["worker", *worker_args], worker_env, log_dir / "worker.log")
        procs.append(worker)
        for i in range(1, worker_processes):  # more workers, e.g. ``--pool threads`` each
            extra_worker_env = {**worker_env, "TTC_WORKER_METRICS_PORT": str(free_port())}
            procs.append(
                Proc(["worker", *worker_args], extra_worker_env, log_dir / f"worker{i}.log")
            )
        if beat:
            schedule = str(log_dir / "celerybeat-schedule")
            procs.append(Proc(["beat", "--schedule", schedule], env, log_dir / "beat.log"))
        if flower:
            flower_proc = Proc(
                ["flower", "--address=127.0.0.1", f"--port={flower_port}"],
                # Local and bound to loopback, like the API with auth off: its HTTP API
                # answers without credentials (the compose file and k8s use basic auth).
                {**env, "FLOWER_UNAUTHENTICATED_API": "true"},
                log_dir / "flower.log",
            )
            procs.append(flower_proc)
        api_port = api_port or free_port()
        auth_env = (
            {} if auth else {"TTC_AUTH_ENABLED": "false", "TTC_ALLOW_INSECURE_NO_AUTH": "true"}
        )
        api = Proc(
            ["serve", "--host", api_host, "--port", str(api_port), "--log-level", api_log_level],
            {**auth_env, **env},
            log_dir / "api.log",
        )
        procs.append(api)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_http(api_url + "/health", proc=api)
        worker_metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        wait_http(worker_metrics_url, proc=worker)
        if flower_url:
            wait_http(flower_url + "/healthcheck", proc=flower_proc)
        yield Stack(
            api_url=api_url,
            sim_url=sim_url,
            env=env,
            procs=procs,
            worker_metrics_url=worker_metrics_url,
            flower_url=flower_url,
        )
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
        from ttc_core.store.db import dispose_engine

        dispose_engine(url)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Stop(Exception):
    """SIGTERM or SIGINT reached ``ttc stack``."""


def _raise_stop(signum: int, _frame: object) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):  # a second signal must not cut the stop short
        signal.signal(sig, signal.SIG_IGN)
    raise _Stop(signal.Signals(signum).name)


def stack_command(ns: Any) -> int:
    """``ttc stack``: migrate, start the children, say where everything is, wait for a
    signal (or a child that dies), stop them all."""
    import tempfile

    from ttc_cli.migrate import upgrade

    upgrade(ns.database_url)
    log_dir = Path(ns.log_dir or tempfile.mkdtemp(prefix="ttc-stack-"))
    admin_key = None
    if ns.auth:
        from ttc_core.service.auth import create_key
        from ttc_core.store.db import Database

        with Database(ns.database_url).transaction() as session:
            _, admin_key = create_key(session, "default", admin=True, name="ttc stack")
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    failed: Proc | None = None
    try:
        with run_stack(
            database_url=ns.database_url,
            broker_url=ns.broker_url,
            log_dir=log_dir,
            auth=ns.auth,
            beat=ns.beat,
            flower=ns.flower,
            api_host=ns.host,
            api_port=ns.port,
            flower_port=ns.flower_port,
            api_log_level="info",
        ) as st:
            _print_banner(st, ns, log_dir, admin_key)
            while failed is None:
                failed = next((p for p in st.procs if p.popen.poll() is not None), None)
                time.sleep(0.5)
    except _Stop as stop:
        print(f"ttc stack: {stop}; stopping", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed is not None:
        print(
            f"ttc stack: {failed.log_path.stem} exited ({failed.popen.returncode}); "
            f"its log:\n{failed.log()[-3000:]}",
            file=sys.stderr,
        )
        return 1
    return 0


def _print_banner(st: Stack, ns: Any, log_dir: Path, admin_key: str | None) -> None:
    lines = []
    if not ns.auth:
        lines.append(
            "ttc stack: AUTH IS OFF: every caller is an admin of tenant 'default' "
            "(use --auth to require API keys)"
        )
    lines += [
        f"  api      {st.api_url}   (UI {st.api_url}/ui, docs {st.api_url}/docs, "
        f"metrics {st.api_url}/metrics)",
        f"  worker   metrics {st.worker_metrics_url}",
        f"  sim      {st.sim_url}",
    ]
    if st.flower_url:
        lines.append(f"  flower   {st.flower_url}")
    if ns.beat:
        lines.append("  beat     the reaper, every few seconds")
    lines.append(f"  logs     {log_dir} (JSON lines)")
    if admin_key:
        lines.append(f"  admin key (shown once): {admin_key}")
    lines.append("Ctrl-C or SIGTERM stops everything.")
    print("\n".join(lines), flush=True)
