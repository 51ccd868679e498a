"""Suite-wide set-up: under pytest-xdist (``make test`` runs ``-n 2``), each test process
but the first gets a Redis server of its own, so that two modules that use the same
Redis database number (``tests.helpers.REDIS_BASE``) never share a broker or a limiter.

Postgres needs nothing: every stack makes a database of its own (``fresh_postgres``), and
the fault suite restarts private servers only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from ttc_cli.stack import free_port

_private: list[subprocess.Popen[bytes]] = []
_dirs: list[str] = []


def _start_private_redis() -> str:
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="ttc-test-redis-")
    _dirs.append(workdir)
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--maxmemory-policy",
            "noeviction",
        ],
        stdout=subprocess.DEVNULL,
    )
    _private.append(proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return f"redis://127.0.0.1:{port}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the test process's private redis-server (port {port}) did not start")


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker not in ("", "gw0") and "TTC_TEST_REDIS" not in os.environ:
        os.environ["TTC_TEST_REDIS"] = _start_private_redis()


def pytest_unconfigure(config: pytest.Config) -> None:
    for proc in _private:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    for workdir in _dirs:
        shutil.rmtree(workdir, ignore_errors=True)


#: The slowest modules (seconds alone, from ``pytest --durations``), started first: under
#: xdist's ``--dist loadfile`` a slow module that comes last runs alone while the other
#: process idles. Modules not listed keep their order, after these.
SLOW_FIRST = (
    "tests/engine/test_simulator_calibration.py",
    "tests/faults/test_worker_kills.py",
    "tests/api/test_webhooks_e2e.py",
    "tests/ui/test_eval_page.py",
    "tests/api/test_openapi_fuzz.py",
    "tests/faults/test_service_restarts.py",
    "tests/ui/test_actions.py",
    "tests/faults/test_eval_worker_kill.py",
    "tests/ui/test_tree_inspector.py",
    "tests/api/test_webhooks_delivery.py",
    "tests/engine/test_adaptive_engine.py",
    "tests/integration/test_operations.py",
    "tests/integration/test_code_sandbox_refused.py",
    "tests/engine/test_fenced_claims.py",
    "tests/docs/test_readme.py",
    "tests/api/test_sse.py",
    "tests/integration/test_code_sandbox_stack.py",
    "tests/engine/test_statistics.py",
    "tests/engine/test_thinking.py",
    "tests/integration/test_resume.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    root = config.rootpath

    def key(item: pytest.Item) -> int:
        try:
            path = item.path.relative_to(root).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(path, len(rank))

    items.sort(key=key)  # stable: the rest keep their collected order
