"""Parallel tree expansion: wall time of one beam search against its critical path.

A beam search keeps N=16 candidates per depth (beam_width 4, so 4 beams each expanded 4
times) for up to 6 depths on a synthetic 6-step problem, through the distributed path:
API → Postgres → Celery (one worker, 2 prefork processes) → ttc_sim (50 ms per sequence,
64 slots) and the simulator's PRM. Every depth must wait for the one before, so the
critical path is depths * (generation latency + PRM latency).

The reference, in the same run and alternating with ttc's rounds, is a plain asyncio
client (httpx, no database, no queue) running the same beam search straight against the
same simulator: per depth, one generation request per kept beam (n = 4; n = 16 at the
root) with each request's samples sent to the PRM as soon as they arrive, the top 4 kept
by PRM score. It pays the simulator's real latency (HTTP, JSON, its event loop), which
the nominal critical path leaves out. Printed: ttc wall / reference wall (issue 13's
target: <= 1.15; an earlier issue's was 1.5) and both against the nominal critical path.

    .venv/bin/python bench/tree_parallel.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import re
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
            "cache": "off",  # every run generates, as the plain client does
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


N, WIDTH, DEPTH, MAX_TOKENS = 16, 4, 6, 128
FINAL = re.compile(r"\\boxed\{|ANSWER:|[Tt]he final answer is")


async def reference_beam(sim_url: str, question: str, seed: int) -> tuple[float, int]:
    """The same beam search as a plain asyncio client: wall time and depths reached."""
    async with httpx.AsyncClient(base_url=sim_url, timeout=60) as client:

        async def expand(path: list[str], n: int, seed: int) -> list[tuple[float, list[str]]]:
            messages: list[dict[str, object]] = [{"role": "user", "content": question}]
            extra: dict[str, object] = {}
            if path:
                messages.append({"role": "assistant", "content": "".join(s + "\n\n" for s in path)})
                extra = {"continue_final_message": True, "add_generation_prompt": False}
            gen = await client.post(
                "/v1/chat/completions",
                json={
                    "model": "sim-gsm8k",
                    "messages": messages,
                    "n": n,
                    "seed": seed,
                    "temperature": 0.8,
                    "max_tokens": MAX_TOKENS,
                    "stop": ["\n\n"],
                    **extra,
                },
            )
            texts = [c["message"]["content"] for c in gen.json()["choices"]]
            prm = await client.post(
                "/v1/prm",
                json={
                    "model": "sim-prm",
                    "items": [{"prompt": question, "steps": [*path, t]} for t in texts],
                },
            )
            scores = [min(r["step_scores"]) for r in prm.json()["results"]]
            return [(sc, [*path, t]) for sc, t in zip(scores, texts, strict=True)]

        start = time.perf_counter()
        beams: list[list[str]] = [[]]
        depth = 0
        while beams and depth < DEPTH:
            depth += 1
            k = N if depth == 1 else N // WIDTH
            scored = await asyncio.gather(
                *(expand(path, k, seed * 1000 + depth * 100 + i) for i, path in enumerate(beams))
            )
            ranked = sorted((c for group in scored for c in group), key=lambda c: -c[0])
            beams = [path for _, path in ranked[:WIDTH] if not FINAL.search(path[-1])]
        return time.perf_counter() - start, depth


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
            # A benchmark on 127.0.0.1: no API keys (the server is told so explicitly).
            extra_env={"TTC_AUTH_ENABLED": "false", "TTC_ALLOW_INSECURE_NO_AUTH": "true"},
        ) as stack,
        httpx.Client(base_url=stack.api_url, timeout=60) as api,
    ):
        run_beam(api, problems[0].question, problems[0].answer, seed=1)  # warm-up
        asyncio.run(reference_beam(stack.sim_url, problems[0].question, seed=1))
        ratios, nominal, ref_nominal = [], [], []
        for r, problem in enumerate(problems[1:], start=1):
            wall, depths = run_beam(api, problem.question, problem.answer, seed=100 + r)
            ref, ref_depths = asyncio.run(
                reference_beam(stack.sim_url, problem.question, seed=100 + r)
            )
            # Per depth, so that a round where the two stop at different depths compares.
            ratio = (wall / depths) / (ref / ref_depths)
            critical = BASE_LATENCY_S + PRM_LATENCY_S
            ratios.append(ratio)
            nominal.append(wall / depths / critical)
            ref_nominal.append(ref / ref_depths / critical)
            print(
                f"round {r}: ttc {depths} depths in {wall:.3f}s, plain client {ref_depths} "
                f"depths in {ref:.3f}s; per depth ttc/plain {ratio:.2f}, "
                f"ttc/nominal {nominal[-1]:.2f}, plain/nominal {ref_nominal[-1]:.2f}"
            )
        print(
            f"beam search n=16 width 4 depth<=6: median per-depth wall, ttc / plain asyncio "
            f"client = {statistics.median(ratios):.2f} (target <= 1.15); ttc / nominal critical "
            f"path = {statistics.median(nominal):.2f}; plain client / nominal = "
            f"{statistics.median(ref_nominal):.2f}"
        )


if __name__ == "__main__":
    main()
