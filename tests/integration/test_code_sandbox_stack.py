"""A hostile tenant's code job through the real stack (API with keys on, Celery worker,
Postgres, Redis): its program and tests try to read ``/etc/shadow``, write ttc's sources,
reach Postgres (Unix socket and TCP) and Redis, fork 300 processes, hold 2 GB across
children and run past the wall limit. Every attempt fails inside the sandbox, the job
reports failed tests, and the database and the source tree are unchanged."""

from __future__ import annotations

import hashlib
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from sqlalchemy import func, select

import ttc_core.service.auth
from tests.helpers import REDIS_BASE, fresh_postgres, wait_until
from tests.integration.coder import serve_program
from ttc_cli.stack import run_stack
from ttc_core.sandbox import SandboxConfig
from ttc_core.sandbox.probe import probe_sandbox
from ttc_core.sandbox.watchdog import pids_of_uid
from ttc_core.service.auth import create_key
from ttc_core.store.db import Database
from ttc_core.store.models import ApiKey, BatchStatus, ExpansionBatch

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not probe_sandbox(SandboxConfig()).strong, reason="no bubblewrap sandbox on this host"
    ),
]

REDIS_DB = 3  # its own: the API tests' session-scoped stack holds 12
SOURCE = Path(ttc_core.service.auth.__file__).resolve()

# The model's "program": it attacks at load time and keeps what it got for the tests.
PROGRAM = textwrap.dedent(
    f"""
    import os, socket

    def attempt(action):
        try:
            return action()
        except Exception as exc:
            return exc

    SHADOW = attempt(lambda: open("/etc/shadow").read())
    WROTE = attempt(lambda: open({str(SOURCE)!r}, "a").write("# pwned\\n"))

    def add(a, b):
        return a + b
    """
)


def attack_tests(redis_port: int) -> str:
    return textwrap.dedent(
        f"""
        import os, socket, time

        def test_canary():
            assert add(1, 2) == 3

        def test_program_read_shadow():
            assert isinstance(SHADOW, str), SHADOW

        def test_program_wrote_sources():
            assert isinstance(WROTE, int), WROTE

        def test_tests_write_sources():
            with open({str(SOURCE)!r}, "a") as f:
                f.write("# pwned by tests\\n")

        def test_postgres_unix_socket():
            s = socket.socket(socket.AF_UNIX)
            s.connect("/var/run/postgresql/.s.PGSQL.5432")

        def test_postgres_tcp():
            socket.create_connection(("127.0.0.1", 5432), timeout=2)

        def test_redis_tcp():
            socket.create_connection(("127.0.0.1", {redis_port}), timeout=2)

        def test_fork_300():
            children = []
            try:
                for _ in range(300):
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(30)
                        os._exit(0)
                    children.append(pid)
            finally:
                assert len(children) >= 300, f"only {{len(children)}} forks"

        def test_two_gigabytes_across_children():
            children = []
            for _ in range(8):
                pid = os.fork()
                if pid == 0:
                    block = bytearray(256 * 1024 * 1024)
                    for i in range(0, len(block), 4096):
                        block[i] = 1
                    os._exit(0)
                children.append(pid)
            codes = [os.waitpid(pid, 0)[1] for pid in children]
            assert codes == [0] * 8, codes

        def test_zz_past_the_wall_limit():
            time.sleep(120)
        """
    )


@pytest.fixture(scope="module")
def coder() -> Iterator[str]:
    with serve_program(PROGRAM) as url:
        yield url


@pytest.fixture(scope="module")
def hostile(coder: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    with (
        fresh_postgres() as url,
        run_stack(
            database_url=url,
            broker_url=broker,
            log_dir=Path(tmp_path_factory.mktemp("logs")),
            extra_endpoints={"coder": {"base_url": coder, "model": "coder"}},
            auth=True,
        ) as stack,
    ):
        db = Database(url)
        with db.transaction() as session:
            _, key = create_key(session, "mallory")  # an ordinary, non-admin tenant
        yield {"api": stack.api_url, "key": key, "db": db, "broker": broker}
        db.engine.dispose()


def _fingerprint(db: Database) -> tuple[int, str]:
    with db.session() as session:
        keys = session.scalar(select(func.count()).select_from(ApiKey)) or 0
    return keys, hashlib.sha256(SOURCE.read_bytes()).hexdigest()


def test_hostile_code_job_is_contained(hostile: dict[str, Any]) -> None:
    db: Database = hostile["db"]
    before = _fingerprint(db)
    redis_port = urlsplit(hostile["broker"]).port or 6379
    headers = {"Authorization": f"Bearer {hostile['key']}"}
    with httpx.Client(base_url=hostile["api"], headers=headers, timeout=30) as client:
        _run_hostile_job(client, db, redis_port, before)


def _run_hostile_job(
    client: httpx.Client, db: Database, redis_port: int, before: tuple[int, str]
) -> None:
    tests = attack_tests(redis_port)
    body = {
        "strategy": "best_of_n",
        "endpoint": "coder",
        "prompt": "write add(a, b)",
        "params": {"n": 1},
        "reference": "unused",
        "verifier": {"kind": "code", "tests": tests, "timeout_s": 6, "memory_mb": 512},
    }
    resp = client.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    job = wait_until(
        lambda: (
            (j := client.get(f"/v1/jobs/{job_id}").json())["status"]
            in ("succeeded", "failed", "cancelled")
            and j
        ),
        timeout=120,
        every=0.5,
    )
    nodes = client.get(f"/v1/jobs/{job_id}/nodes", params={"limit": 50}).json()["data"]
    samples = [n for n in nodes if n["parent_id"] is not None]
    assert job["status"] == "succeeded", job
    assert len(samples) == 1, nodes
    (sample,) = samples
    total = tests.count("def test_")
    # Only the canary passed: every attack failed, and the run reported them as failures.
    assert sample["correct"] is False
    assert sample["score"] == pytest.approx(1 / total), sample
    assert "tests.py" in sample["meta"]["feedback"]
    assert _fingerprint(db) == before  # no key row added, no source byte changed
    assert "pwned" not in SOURCE.read_text()


def _sandbox_pids() -> list[int]:
    config = SandboxConfig()
    return [
        pid
        for uid in range(config.uid_base, config.uid_base + config.slots)
        for pid in pids_of_uid(uid)
    ]


def test_cancel_stops_a_running_verification_within_2s(hostile: dict[str, Any]) -> None:
    db: Database = hostile["db"]
    headers = {"Authorization": f"Bearer {hostile['key']}"}
    body = {
        "strategy": "best_of_n",
        "endpoint": "coder",
        "prompt": "write add(a, b)",
        "params": {"n": 1},
        "reference": "unused",
        "verifier": {
            "kind": "code",
            "tests": "import time\n\ndef test_slow():\n    time.sleep(55)\n",
            "timeout_s": 60,
        },
    }
    with httpx.Client(base_url=hostile["api"], headers=headers, timeout=30) as client:
        resp = client.post("/v1/jobs", json=body)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        wait_until(_sandbox_pids, timeout=60, every=0.1)  # the verification is running
        cancelled = time.monotonic()
        resp = client.post(f"/v1/jobs/{job_id}/cancel")
        assert resp.status_code in (200, 202), resp.text

    def batches_open() -> int:
        with db.session() as session:
            return len(
                session.scalars(
                    select(ExpansionBatch.id).where(
                        ExpansionBatch.job_id == job_id,
                        ExpansionBatch.status == BatchStatus.pending,
                    )
                ).all()
            )

    wait_until(lambda: not _sandbox_pids(), timeout=30, every=0.05)
    gone = time.monotonic() - cancelled
    wait_until(lambda: batches_open() == 0, timeout=30, every=0.05)
    ended = time.monotonic() - cancelled
    assert gone < 2.0, f"sandbox processes outlived the cancel by {gone:.2f}s"
    assert ended < 2.0, f"the batch ended {ended:.2f}s after the cancel"
