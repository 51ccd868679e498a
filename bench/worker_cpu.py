"""Worker CPU per generated sample: best-of-4096 through the stack (API -> Postgres ->
Celery -> ttc_sim; one worker with 2 prefork processes, or with ``--pool threads`` 2
worker processes) against a plain asyncio client sending the same requests, in one run.

ttc_sim batches ``n`` (8,192 slots, 10 ms per request whatever its ``n``, as an
unsaturated vLLM), so the server is never the bottleneck and what is measured is the
client side's CPU. ttc: the CPU time of the worker's processes (parent and pool
children, from /proc) while the job runs, divided by the samples. Plain: the CPU time
of one process running an ``httpx.AsyncClient`` that sends the same N/n requests and
parses the replies. Prints each round and the medians.

    .venv/bin/python bench/worker_cpu.py [--n 4096] [--rounds 3] [--n-per-request 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import redis
from workers import add_pool_arguments, stack_workers

from ttc_cli.stack import Stack, fresh_postgres, run_stack
from ttc_sim.tasks import gsm8k_problems

SIM_ARGS = ["--base-latency-s", "0.01", "--per-token-latency-s", "0", "--slots", "8192"]
TICK = os.sysconf("SC_CLK_TCK")


def group_cpu(leader: int) -> float:
    """CPU seconds (user + system) of every live process in ``leader``'s process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


async def plain_client(sim_url: str, prompt: str, n: int, per_request: int, seed: int) -> float:
    """The reference's CPU seconds: the same requests, straight to the simulator."""
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    began = time.process_time()
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one(start: int) -> int:
            resp = await client.post(
                f"{sim_url}/v1/chat/completions",
                json={
                    "model": "sim-gsm8k",
                    "messages": [{"role": "user", "content": prompt}],
                    "n": per_request,
                    "seed": seed + start,
                    "temperature": 0.8,
                    "max_tokens": 512,
                },
            )
            resp.raise_for_status()
            return len(resp.json()["choices"])

        got = await asyncio.gather(*(one(s) for s in range(0, n, per_request)))
    assert sum(got) == n
    return time.process_time() - began


def ttc_job(api: httpx.Client, stack: Stack, prompt: str, answer: str, n: int, seed: int) -> float:
    """The worker's CPU seconds for one best-of-``n`` job."""
    workers = [p.popen.pid for p in stack.procs if "worker" in p.popen.args]
    before = sum(group_cpu(pid) for pid in workers)
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
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    assert job["progress"]["nodes"] == n, job["progress"]
    time.sleep(0.3)  # the completing task's last writes and its postrun
    return sum(group_cpu(pid) for pid in workers) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_pool_arguments(parser)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-per-request", type=int, default=16)
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
            endpoint_overrides={"max_concurrency": 512, "max_n_per_request": ns.n_per_request},
        ) as stack,
        httpx.Client(base_url=stack.api_url, timeout=60) as api,
    ):
        ttc_job(api, stack, problem.question, problem.answer, 256, seed=1)  # warm up
        asyncio.run(plain_client(stack.sim_url, problem.question, 256, ns.n_per_request, 1))
        ttc_ms, plain_ms = [], []
        for r in range(ns.rounds):
            seed = 1000 * (r + 1)
            plain = asyncio.run(
                plain_client(stack.sim_url, problem.question, ns.n, ns.n_per_request, seed)
            )
            ttc = ttc_job(api, stack, problem.question, problem.answer, ns.n, seed)
            ttc_ms.append(1000 * ttc / ns.n)
            plain_ms.append(1000 * plain / ns.n)
            print(
                f"round {r + 1}: worker {ttc_ms[-1]:.3f} ms/sample, plain client "
                f"{plain_ms[-1]:.3f} ms/sample, ratio {ttc / plain:.2f}"
            )
        print(
            f"best-of-{ns.n}, n={ns.n_per_request} per request: worker CPU "
            f"{statistics.median(ttc_ms):.3f} ms/sample (target <= 0.15), plain client "
            f"{statistics.median(plain_ms):.3f} ms/sample"
        )


if __name__ == "__main__":
    main()
