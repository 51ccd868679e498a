"""The engine's own cost per job, without the API or Celery: best-of-1 jobs driven in
this process (``advance_chain``: the driver step and its claim, the request, the insert,
the completing transaction with the last driver step) against Postgres and ttc_sim at
zero latency, side by side with a plain asyncio client sending the same requests to the
same server, in one run.

    engine: create the job (not timed), then ``advance_chain`` until it is finished
    plain:  one ``httpx.AsyncClient`` POST with the same body, reply parsed

Prints the median wall per job of each over ``--rounds`` rounds of ``--jobs`` jobs and
their difference (what the engine adds to a job: transactions, statements, Python), and
the engine's CPU per job in this process (steadier than wall time on a noisy machine;
Postgres's own CPU is not in it). The
stack's end-to-end number is ``bench/job_latency.py``; this one isolates the engine.

    .venv/bin/python bench/engine_overhead.py [--jobs 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from ttc_cli.stack import fresh_postgres
from ttc_core.engine.batches import advance_chain
from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Job
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems

#: This process's CPU seconds per job of each engine round (every thread: the loop and the
#: database threads), steadier than wall time on a noisy machine.
CPU: list[float] = []


async def engine_round(
    ctx: EngineContext, question: str, answer: str, jobs: int, seed: int
) -> float:
    def submit(i: int) -> str:
        spec = JobSpec(
            strategy="best_of_n",
            endpoint="sim",
            prompt=question,
            params={"n": 1, "max_tokens": 512},
            verifier={"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"},
            reference=answer,
            seed=seed + i,
            cache="off",  # every job generates, as the plain client does
        )
        with ctx.db.transaction() as session:
            return create_job(session, spec, ctx.settings, tenant="bench").id

    ids = [submit(i) for i in range(jobs)]
    began, cpu = time.perf_counter(), time.process_time()
    for job_id in ids:
        await advance_chain(ctx, job_id, until=time.monotonic() + 60, send=lambda _: None)
    elapsed = time.perf_counter() - began
    CPU.append((time.process_time() - cpu) / jobs)
    with ctx.db.session() as session:
        for job_id in ids:
            job = session.get_one(Job, job_id)
            assert job.status == "succeeded", (job.status, job.error)
    return elapsed / jobs


async def plain_round(base_url: str, question: str, jobs: int, seed: int) -> float:
    async with httpx.AsyncClient(timeout=60) as client:
        began = time.perf_counter()
        for i in range(jobs):
            resp = await client.post(
                f"{base_url}/chat/completions",
                json={
                    "model": "sim-gsm8k",
                    "messages": [{"role": "user", "content": question}],
                    "n": 1,
                    "seed": seed + i,
                    "max_tokens": 512,
                },
            )
            resp.raise_for_status()
            resp.json()
        return (time.perf_counter() - began) / jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    ns = parser.parse_args()
    problem = gsm8k_problems()[0]
    config = SimConfig(base_latency_s=0.0, per_token_latency_s=0.0)
    with SimServer(config) as sim, fresh_postgres() as url:
        settings = Settings(
            database_url=url,
            endpoints={"sim": EndpointConfig(base_url=sim.base_url, model="sim-gsm8k")},
        )

        async def run() -> tuple[list[float], list[float]]:
            ctx = EngineContext(settings=settings, db=Database(url), http=make_http_client())
            engine, plain = [], []
            try:
                await engine_round(ctx, problem.question, problem.answer, 5, 0)  # warm up
                for r in range(ns.rounds):
                    seed = 1000 * (r + 1)
                    plain.append(await plain_round(sim.base_url, problem.question, ns.jobs, seed))
                    engine.append(
                        await engine_round(ctx, problem.question, problem.answer, ns.jobs, seed)
                    )
                    print(
                        f"round {r + 1}: engine {1000 * engine[-1]:.1f} ms/job "
                        f"({1000 * CPU[-1]:.1f} ms of this process's CPU), "
                        f"plain client {1000 * plain[-1]:.1f} ms/request"
                    )
            finally:
                await ctx.aclose()
            return engine, plain

        engine, plain = asyncio.run(run())
    e, p = statistics.median(engine), statistics.median(plain)
    cpu = statistics.median(CPU[1:])  # the warm-up round left out
    print(
        f"best-of-1 in process x {ns.jobs}: engine {1000 * e:.1f} ms/job "
        f"({1000 * cpu:.1f} ms CPU), plain client {1000 * p:.1f} ms/request; "
        f"the engine adds {1000 * (e - p):.1f} ms per job"
    )


if __name__ == "__main__":
    main()
