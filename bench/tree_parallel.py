"""Parallel tree expansion: wall time of one beam search against its critical path.

A beam search keeps N=16 candidates per depth (beam_width 4, so 4 beams each expanded 4
times) for up to 6 depths on a synthetic 6-step problem, through the distributed path:
API → Postgres → Celery (one worker, 2 prefork processes) → ttc_sim (50 ms per sequence,
64 slots) and the simulator's PRM. Every depth must wait for the one before, so the
critical path is depths * (generation latency + PRM latency); the benchmark prints the
ratio of the measured wall time to it.

    .venv/bin/python bench/tree_parallel.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import redis

from ttc_cli.stack import fresh_postgres, run_stack
from ttc_sim.tasks import synthetic_problems

BASE_LATENCY_S = 0.05
PER_TOKEN_S = 0.0
PRM_LATENCY_S = 0.005
SIM_ARGS = [
    "--base-latency-s",
    str(BASE_LATENCY_S),
    "--per-token-latency-s",
    str(PER_TOKEN_S),
    "--reward-latency-s",
    str(PRM_LATENCY_S),
    "--slots",
    "64",
]


def run_beam(api: httpx.Client, question: str, answer: str, seed: int) -> tuple[float, int]:
    """Wall time from the job's creation to its end, as the server recorded them (polling
    slowly, so that the poll loop does not take CPU from the 2-core machine)."""
    resp = api.post(
        "/v1/jobs",
        json={
            "strategy": "beam_search",
            "endpoint": "sim",
            "prompt": question,
            "params": {"n": 16, "beam_width": 4, "max_depth": 6, "max_tokens": 128},
            "prm": {"kind": "prm", "endpoint": "sim-prm", "protocol": "json", "aggregation": "min"},
            "reference": answer,
            "seed": seed,
        },
    )
    resp.raise_for_status()
    job_id = resp.json()["id"]
    while True:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    assert job["status"] == "succeeded", job
    created = datetime.fromisoformat(job["created_at"])
    finished = datetime.fromisoformat(job["finished_at"])
    return (finished - created).total_seconds(), job["progress"]["step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/12")
    ns = parser.parse_args()
    redis.Redis.from_url(ns.broker).flushdb()
    problems = synthetic_problems(ns.rounds + 1, seed=77, steps=6)
    with (
        tempfile.TemporaryDirectory() as logs,
        fresh_postgres() as db_url,
        run_stack(
            database_url=db_url,
            broker_url=ns.broker,
            log_dir=Path(logs),
            sim_args=SIM_ARGS,
            endpoint_overrides={"max_concurrency": 256},
        ) as stack,
        httpx.Client(base_url=stack.api_url, timeout=60) as api,
    ):
        run_beam(api, problems[0].question, problems[0].answer, seed=1)  # warm-up
        ratios = []
        for r, problem in enumerate(problems[1:], start=1):
            wall, depths = run_beam(api, problem.question, problem.answer, seed=100 + r)
            critical = depths * (BASE_LATENCY_S + PRM_LATENCY_S)
            ratios.append(wall / critical)
            print(
                f"round {r}: {depths} depths, wall {wall:.3f}s, critical path "
                f"{critical:.3f}s, ratio {wall / critical:.2f}"
            )
        print(
            f"beam search n=16 width 4 depth<=6: median wall/critical = "
            f"{statistics.median(ratios):.2f}"
        )


if __name__ == "__main__":
    main()
