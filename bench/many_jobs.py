"""Many small jobs: 1,000 best-of-8 jobs from 16 concurrent clients through the stack, vs a
plain asyncio client sending the same 1,000 requests (n=8) straight to the same simulator,
in one run (issue 13's acceptance: makespan ratio <= 3, Postgres connections <= 20).

    ttc:   16 client threads, each submitting its share of the jobs over the REST API and
           polling them to the end -> Postgres -> Celery (1 worker, 2 prefork processes)
           -> ttc_sim
    plain: one asyncio httpx client sending the same requests (one request with n=8 per
           job, the same prompts and seeds), all at once

Makespan: from the first submission (or request) to the last job done (or answer). The
peak of Postgres connections to the job database is sampled every 0.2 s while ttc runs.
Run it against a simulator that charges per sequence (the default: 64 slots, each
sequence holds one) and one where n is nearly free (``--slots 4096``: every sequence of a
request runs at once, as on an unsaturated vLLM).

    .venv/bin/python bench/many_jobs.py [--jobs 1000] [--clients 16] [--slots 64]

Needs Postgres and Redis (the same as the integration tests). Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg
import redis
from workers import add_pool_arguments, stack_workers

from ttc_cli.stack import fresh_postgres, run_stack
from ttc_sim.tasks import gsm8k_problems

N = 8
TERMINAL = {"succeeded", "failed", "cancelled"}


def problems(jobs: int) -> list[tuple[str, str]]:
    pool = gsm8k_problems()
    return [(pool[i % len(pool)].question, pool[i % len(pool)].answer) for i in range(jobs)]


async def plain(sim_url: str, work: list[tuple[str, str]]) -> float:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:

        async def one(i: int, prompt: str) -> int:
            resp = await client.post(
                f"{sim_url}/v1/chat/completions",
                json={
                    "model": "sim-gsm8k",
                    "messages": [{"role": "user", "content": prompt}],
                    "n": N,
                    "seed": 1000 + i,
                    "temperature": 0.8,
                    "max_tokens": 512,
                },
            )
            resp.raise_for_status()
            return len(resp.json()["choices"])

        began = time.perf_counter()
        got = await asyncio.gather(*(one(i, p) for i, (p, _) in enumerate(work)))
        elapsed = time.perf_counter() - began
    assert sum(got) == N * len(work)
    return elapsed


def ttc(api_url: str, work: list[tuple[str, str]], clients: int) -> tuple[float, dict[str, int]]:
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    shares = [list(enumerate(work))[c::clients] for c in range(clients)]

    def client(share: list[tuple[int, tuple[str, str]]]) -> None:
        with httpx.Client(base_url=api_url, timeout=120) as http:
            ids = []
            for i, (prompt, answer) in share:
                resp = http.post(
                    "/v1/jobs",
                    json={
                        "strategy": "best_of_n",
                        "endpoint": "sim",
                        "prompt": prompt,
                        "reference": answer,
                        "params": {"n": N},
                        "seed": 1000 + i,
                        "cache": "off",  # every run generates, as the plain client does
                    },
                )
                resp.raise_for_status()
                ids.append(resp.json()["id"])
            # Jobs finish roughly in order: wait on the oldest pending one, then the next
            # (one poll in flight per client, so the polling does not load the API).
            for job_id in ids:
                while (status := http.get(f"/v1/jobs/{job_id}").json()["status"]) not in TERMINAL:
                    time.sleep(0.1)
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(s,)) for s in shares]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - began, statuses


def connections(dsn: str, database: str, stop: threading.Event, peak: list[int]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(
                "select count(*) from pg_stat_activity where datname = %s", (database,)
            ).fetchone()
            peak[0] = max(peak[0], int(row[0]) - 1 if row else 0)  # less this sampler's own
            stop.wait(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_pool_arguments(parser)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--slots", default="64")
    parser.add_argument("--base-latency-s", default="0.05")
    parser.add_argument(
        "--redis", default=os.environ.get("TTC_TEST_REDIS", "redis://127.0.0.1:6379")
    )
    args = parser.parse_args()
    broker = f"{args.redis}/1"
    redis.Redis.from_url(broker).flushdb()
    sim_args = ["--base-latency-s", args.base_latency_s, "--per-token-latency-s", "0"]
    sim_args += ["--slots", args.slots]
    work = problems(args.jobs)
    limits = {
        "TTC_TENANT_RATE_PER_MINUTE": "1000000",
        "TTC_TENANT_MAX_ACTIVE_JOBS": str(10 * args.jobs),
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_postgres() as pg_url,
        run_stack(
            **stack_workers(args),
            database_url=pg_url,
            broker_url=broker,
            log_dir=Path(tmp),
            sim_args=sim_args,
            extra_env=limits,
        ) as stack,
    ):
        reference = asyncio.run(plain(stack.sim_url, work))
        dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
        database = dsn.rsplit("/", 1)[-1]
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(target=connections, args=(dsn, database, stop, peak))
        sampler.start()
        try:
            makespan, statuses = ttc(stack.api_url, work, args.clients)
        finally:
            stop.set()
            sampler.join()
    print(
        f"{args.jobs} best-of-{N} jobs from {args.clients} clients; sim "
        f"{args.base_latency_s}s per sequence, {args.slots} slots; workers: {args.pool}"
    )
    print(f"plain asyncio client: {reference:.2f}s")
    print(f"ttc: {makespan:.2f}s  statuses {statuses}  peak Postgres connections {peak[0]}")
    print(f"ratio (ttc / plain): {makespan / reference:.2f}")


if __name__ == "__main__":
    main()
