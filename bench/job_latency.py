"""Added latency of a best-of-1 job: end to end through the stack minus the inference
time, against a plain asyncio client sending the same request, in one run.

    ttc:   POST /v1/jobs best_of_n n=1 -> API -> Postgres -> Celery (1 worker, 2 prefork
           processes) -> ttc_sim (50 ms per request); timed from the POST until the job's
           result is committed (its ``finished_at``, written by the worker: the same clock
           on this machine), and until a poll (every ``--poll-ms``) sees it finished
    plain: one request with the same body, straight to ttc_sim

Added latency = ttc's end-to-end time minus the request's latency as the worker
measured it (``latency_ms`` of the sample node: the server's time plus HTTP). Prints the
median and p90 over ``--jobs`` jobs, and the plain client's median. A poll is a request
to the API, which shares the machine's 2 cores with the worker: polling every 2 ms costs
the job itself time, polling every 20 ms adds up to 20 ms of waiting; the commit time
is what SSE or a webhook would announce.

    .venv/bin/python bench/job_latency.py [--jobs 50] [--poll-ms 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import redis
from workers import add_pool_arguments, stack_workers

from ttc_cli.stack import fresh_postgres, run_stack
from ttc_sim.tasks import gsm8k_problems

SIM_ARGS = ["--base-latency-s", "0.05", "--per-token-latency-s", "0"]


def ttc_job(
    api: httpx.Client, prompt: str, answer: str, seed: int, poll_s: float
) -> tuple[float, float, float]:
    """(seconds until committed, until the poll saw it, the sample's request seconds)."""
    began_wall = time.time()
    began = time.perf_counter()
    resp = api.post(
        "/v1/jobs",
        json={
            "strategy": "best_of_n",
            "endpoint": "sim",
            "prompt": prompt,
            "params": {"n": 1, "max_tokens": 512},
            "verifier": {"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"},
            "reference": answer,
            "seed": seed,
            "cache": "off",  # every run generates, as the plain client does
        },
    )
    if resp.status_code >= 400:
        raise SystemExit(f"POST /v1/jobs: {resp.status_code} {resp.text}")
    job_id = resp.json()["id"]
    while True:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(poll_s)
    elapsed = time.perf_counter() - began
    assert job["status"] == "succeeded", job
    committed = dt.datetime.fromisoformat(job["finished_at"]).timestamp() - began_wall
    nodes = api.get(f"/v1/jobs/{job_id}/nodes").json()
    items = nodes["data"]
    latency = max(float(n.get("latency_ms") or 0.0) for n in items) / 1000
    return committed, elapsed, latency


def plain_request(client: httpx.Client, sim_url: str, prompt: str, seed: int) -> float:
    began = time.perf_counter()
    resp = client.post(
        f"{sim_url}/v1/chat/completions",
        json={
            "model": "sim-gsm8k",
            "messages": [{"role": "user", "content": prompt}],
            "n": 1,
            "seed": seed,
            "max_tokens": 512,
        },
    )
    resp.raise_for_status()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_pool_arguments(parser)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--poll-ms", type=float, default=20.0)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/1")
    ns = parser.parse_args()
    redis.Redis.from_url(ns.broker).flushdb()
    problem = gsm8k_problems()[0]
    with (
        tempfile.TemporaryDirectory() as logs,
        fresh_postgres() as db_url,
        run_stack(
            **stack_workers(ns),
            database_url=db_url,
            broker_url=ns.broker,
            log_dir=Path(logs),
            sim_args=SIM_ARGS,
        ) as stack,
        httpx.Client(base_url=stack.api_url, timeout=60) as api,
        httpx.Client(timeout=60) as plain,
    ):
        for seed in range(3):  # warm up: worker processes, pools, imports
            ttc_job(api, problem.question, problem.answer, seed, ns.poll_ms / 1000)
            plain_request(plain, stack.sim_url, problem.question, seed)
        added, seen_added, totals, plains = [], [], [], []
        for i in range(ns.jobs):
            seed = 100 + i
            plains.append(plain_request(plain, stack.sim_url, problem.question, seed))
            committed, seen, inference = ttc_job(
                api, problem.question, problem.answer, seed, ns.poll_ms / 1000
            )
            totals.append(committed)
            added.append(committed - inference)
            seen_added.append(seen - inference)
        q, q_seen = statistics.quantiles(added, n=10), statistics.quantiles(seen_added, n=10)
        print(
            f"best-of-1 x {ns.jobs}: until committed median "
            f"{1000 * statistics.median(totals):.1f} ms; added latency median "
            f"{1000 * statistics.median(added):.1f} ms (target <= 50), p90 {1000 * q[-1]:.1f} ms; "
            f"until a poll every {ns.poll_ms:g} ms saw it: added median "
            f"{1000 * statistics.median(seen_added):.1f} ms, p90 {1000 * q_seen[-1]:.1f} ms; "
            f"plain client median {1000 * statistics.median(plains):.1f} ms"
        )


if __name__ == "__main__":
    main()
