"""Fan-out overhead: best-of-N with N=1024 through the distributed path vs a plain
asyncio client, in one run, against the same simulator.

    ttc:   API -> Postgres -> Celery (1 worker, 2 prefork processes) -> ttc_sim
    plain: one asyncio httpx client sending the same requests (N/n requests with n=16
           and the same seeds) straight to ttc_sim, all at once

ttc_sim: 50 ms per sequence, 64 slots. Prints each round and the median wall-time ratio
(ttc / plain). Needs Postgres and Redis (the same as the integration tests).

    .venv/bin/python bench/fanout.py [--n 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
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
N_PER_REQUEST = 16


async def plain_client(sim_url: str, prompt: str, n: int, seed: int) -> float:
    """The reference: the same requests, straight to the simulator."""
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one(start: int) -> int:
            resp = await client.post(
                f"{sim_url}/v1/chat/completions",
                json={
                    "model": "sim-gsm8k",
                    "messages": [{"role": "user", "content": prompt}],
                    "n": N_PER_REQUEST,
                    "seed": seed + start,
                    "temperature": 0.8,
                    "max_tokens": 512,
                },
            )
            resp.raise_for_status()
            return len(resp.json()["choices"])

        began = time.perf_counter()
        got = await asyncio.gather(*(one(s) for s in range(0, n, N_PER_REQUEST)))
        elapsed = time.perf_counter() - began
    assert sum(got) == n
    return elapsed


def ttc_job(api: httpx.Client, prompt: str, answer: str, n: int, seed: int) -> float:
    began = time.perf_counter()
    resp = api.post(
        "/v1/jobs",
        json={
            "strategy": "best_of_n",
            "endpoint": "sim",
            "prompt": prompt,
            "params": {"n": n, "temperature": 0.8, "max_tokens": 512},
            "verifier": {"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"},
            "reference": answer,
            "seed": seed,
            "cache": "off",  # every run generates, as the plain client does
        },
    )
    resp.raise_for_status()
    job_id = resp.json()["id"]
    while True:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - began
    assert job["status"] == "succeeded", job
    assert job["progress"]["nodes"] == n, job["progress"]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_pool_arguments(parser)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--batch-samples", type=int, default=None)
    parser.add_argument(
        "--slots",
        default="64",
        help="simulator slots: 64 charges per sequence; 4096 makes n nearly free, as on "
        "an unsaturated vLLM that batches a request's samples",
    )
    ns = parser.parse_args()
    redis.Redis.from_url(ns.broker).flushdb()
    problem = gsm8k_problems()[0]
    extra = {"TTC_EXPAND_BATCH_SAMPLES": str(ns.batch_samples)} if ns.batch_samples else {}
    with (
        tempfile.TemporaryDirectory() as logs,
        fresh_postgres() as db_url,
        run_stack(
            **stack_workers(ns),
            database_url=db_url,
            broker_url=ns.broker,
            log_dir=Path(logs),
            sim_args=[*SIM_ARGS, "--slots", ns.slots],
            endpoint_overrides={"max_concurrency": 256, "max_n_per_request": N_PER_REQUEST},
            extra_env=extra,
        ) as stack,
        httpx.Client(base_url=stack.api_url, timeout=60) as api,
    ):
        # Warm up both paths (worker processes, connections, imports).
        ttc_job(api, problem.question, problem.answer, 64, seed=1)
        asyncio.run(plain_client(stack.sim_url, problem.question, 64, seed=1))
        ratios = []
        for r in range(ns.rounds):
            seed = 1000 * (r + 1)
            plain = asyncio.run(plain_client(stack.sim_url, problem.question, ns.n, seed))
            ttc = ttc_job(api, problem.question, problem.answer, ns.n, seed)
            ratios.append(ttc / plain)
            print(f"round {r + 1}: plain {plain:.3f}s  ttc {ttc:.3f}s  ratio {ttc / plain:.2f}")
        print(f"N={ns.n}: median ratio ttc/plain = {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
