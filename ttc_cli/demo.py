"""``ttc demo``: a real search on the embedded default.

SQLite + the local in-process executor + the simulated endpoint on a local port: the same
step loop, inference client, verifiers and store as the service, with nothing to install
beyond the package. Runs best-of-N (ranked by the simulated reward model),
self-consistency (majority vote) and step-level beam search (ranked by the simulated
process reward model) on GSM8K problems and prints each answer, its score, the
tokens used and a compact view of the tree.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from ttc_cli.inspect import tree_rows
from ttc_cli.migrate import upgrade
from ttc_cli.render import compact_tree, progress_line, write_progress
from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.executor import run_job
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_core.store.models import TERMINAL_STATUSES, Job

INSTRUCTION = "\n\nSolve step by step. End with a line 'ANSWER: <number>'."

#: (strategy, params beyond n, verifier, step scorer)
STRATEGIES: tuple[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any] | None], ...] = (
    ("best_of_n", {}, {"kind": "reward_model", "endpoint": "sim-rm"}, None),
    ("self_consistency", {}, {"kind": "math"}, None),
    (
        "beam_search",
        {"beam_width": 4, "max_depth": 10, "max_tokens": 128},
        {"kind": "math"},
        {"kind": "prm", "endpoint": "sim-prm", "protocol": "json", "aggregation": "min"},
    ),
)


async def _watch(db: Database, job_ids: list[str], total: int | None) -> None:
    while True:
        with db.session() as session:
            jobs = [session.get(Job, j) for j in job_ids]
        done = sum(j.node_count for j in jobs if j)
        tokens = sum(j.completion_tokens for j in jobs if j)
        finished = sum(1 for j in jobs if j and j.status in TERMINAL_STATUSES)
        write_progress(progress_line(f"{finished}/{len(job_ids)} jobs", done, total, tokens))
        if finished == len(job_ids):
            write_progress("\n")
            return
        await asyncio.sleep(0.2)


async def _run_all(ctx: EngineContext, job_ids: list[str], total: int | None) -> None:
    try:
        await asyncio.gather(_watch(ctx.db, job_ids, total), *(run_job(ctx, j) for j in job_ids))
    finally:
        await ctx.aclose()


def run_demo(ns: argparse.Namespace) -> int:
    from ttc_sim.config import SimConfig
    from ttc_sim.runner import SimServer
    from ttc_sim.tasks import gsm8k_problems

    began = time.perf_counter()
    with SimServer(SimConfig(base_latency_s=0.05, slots=64)) as sim:
        settings = Settings(
            database_url=ns.database_url,
            executor="local",
            # Embedded and local: ``--serve`` runs without API keys, and says so loudly.
            auth_enabled=False,
            allow_insecure_no_auth=True,
            endpoints={
                "sim": EndpointConfig(base_url=sim.base_url, model="sim-gsm8k"),
                "sim-rm": EndpointConfig(base_url=sim.url, model="sim-rm", kind="reward"),
                "sim-prm": EndpointConfig(base_url=sim.url, model="sim-prm", kind="reward"),
            },
        )
        upgrade(settings.database_url)
        db = Database(settings.database_url)
        print(f"simulated endpoint at {sim.base_url}; database {settings.database_url}")
        job_ids: list[str] = []
        problems = gsm8k_problems()[: ns.problems]
        with db.transaction() as session:
            for i, problem in enumerate(problems):
                for strategy, params, verifier, prm in STRATEGIES:
                    spec = JobSpec.model_validate(
                        {
                            "strategy": strategy,
                            "endpoint": "sim",
                            "prompt": problem.question + INSTRUCTION,
                            "params": {"n": ns.n, "temperature": 0.8, "max_tokens": 512, **params},
                            "verifier": verifier,
                            "prm": prm,
                            "reference": problem.answer,
                            "seed": 1000 + i,
                        }
                    )
                    job_ids.append(create_job(session, spec, settings, tenant="default").id)
        ctx = EngineContext(settings=settings, db=db, http=make_http_client())
        asyncio.run(_run_all(ctx, job_ids, total=None))

        with db.session() as session:
            for job_id in job_ids:
                job = session.get(Job, job_id)
                assert job is not None
                result = job.result or {}
                print(f"\n== {job.strategy} on: {(job.prompt or '')[:70]}...")
                print(f"   job {job.id}  status {job.status}  reference {job.reference}")
                print(
                    f"   answer {result.get('answer')}  score {result.get('score')}  "
                    f"correct {result.get('correct')}"
                )
                print(
                    f"   tokens {job.prompt_tokens} prompt + {job.completion_tokens} completion"
                    f" in {job.requests} requests; {job.node_count} nodes"
                )
                if votes := (result.get("details") or {}).get("votes"):
                    print(f"   votes {votes}")
                print(compact_tree(tree_rows(session, job), max_rows=10))
        print(
            f"\ndone in {time.perf_counter() - began:.1f}s. Inspect a tree: ttc tree [JOB_ID] "
            f"--database-url {settings.database_url} (the latest job without an id)"
        )
        if ns.serve:
            import uvicorn

            from ttc_api.app import create_app

            print(
                f"browse http://127.0.0.1:{ns.port}/ui (the trees) or "
                f"http://127.0.0.1:{ns.port}/v1/jobs (Ctrl-C to stop)"
            )
            uvicorn.run(create_app(settings), host="127.0.0.1", port=ns.port, log_level="warning")
    return 0
