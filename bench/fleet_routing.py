"""Prefix-aware routing against round-robin on a fleet of simulated replicas.

Beam search (n=64 candidates per depth, beam width 4, so 16 beams each expanded 4 times,
max depth 8) on synthetic 8-step problems, through ttc's real engine (SQLite, the
in-process executor) against one endpoint of 4 ``ttc_sim`` replicas, each its own process
with its own LRU prefix cache. The same jobs (same seeds, so the same trees: the simulator
is deterministic) run once with ``routing.policy: prefix_affinity`` and once with
``round_robin``, alternating which goes first from round to round, the caches emptied
(``POST /reset_prefix_cache``) before each run.

The replicas model one GPU each (``batching: continuous``): a request prefills the prompt
tokens its replica's cache lacks, one prefill at a time per replica, at
``PREFILL_S_PER_TOKEN`` (10k tokens/s); each decode token takes ``PER_TOKEN_S`` (30 ms)
times ``1 + DECODE_SLOWDOWN x active sequences`` (+13% at 64), and each replica's cache
holds ``--cache-blocks`` blocks of ``--block-size`` tokens (2048 x 16: 32k tokens; vLLM's
block size; ``--block-size 1`` is SGLang's radix cache, token-granular). This is a
calibration of a 7B model on one data-centre GPU, not a measurement of one: the prefill
share of the wall time, and so the wall-time ratio, moves with it (the token counts do
not). Wall times on a loaded 2-core machine also carry the CPU time of the 4 simulator
processes and the engine.

Reported per policy, from the replicas' own ``/metrics`` (vLLM's prefix-cache counters):
prompt tokens prefilled (queried minus cache hits), wall time, and the largest replica's
share of the load (its generated sequences over the mean). Targets: prefix-aware prefills
>= 3x fewer prompt tokens, its wall time <= 0.8x round-robin's, no replica above 1.25x the
mean load.

    .venv/bin/python bench/fleet_routing.py [--problems 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from ttc_cli.migrate import upgrade
from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.executor import run_job
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_sim.tasks import Problem, synthetic_problems

N, WIDTH, DEPTH, REPLICAS = 64, 4, 8, 4
BASE_LATENCY_S = 0.01
PER_TOKEN_S = 0.03
DECODE_SLOWDOWN = 0.002
PREFILL_S_PER_TOKEN = 0.0001
SIM_ARGS = [
    "--base-latency-s", str(BASE_LATENCY_S),
    "--per-token-latency-s", str(PER_TOKEN_S),
    "--prefill-latency-per-token-s", str(PREFILL_S_PER_TOKEN),
    "--batching", "continuous",
    "--decode-slowdown", str(DECODE_SLOWDOWN),
    "--slots", "256",
    "--log-level", "warning",
]  # fmt: skip
CACHE_BLOCKS = 2048
BLOCK_SIZE = 16
PRM_ARGS = ["--reward-latency-s", "0.005", "--log-level", "warning"]
POLICIES = ("prefix_affinity", "round_robin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sim_processes(count: int, args: Sequence[str]) -> Iterator[list[str]]:
    """``count`` simulator processes on 127.0.0.1; their root URLs."""
    ports = [free_port() for _ in range(count)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ttc_sim", "--port", str(port), *args],
            stdout=subprocess.DEVNULL,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 30
        for url in urls:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"simulator at {url} did not start")
                time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


@dataclass
class RunResult:
    policy: str
    wall_s: float
    prompt_tokens: int
    prefilled: int
    sequences: list[int]

    @property
    def max_share(self) -> float:
        mean = statistics.fmean(self.sequences)
        return max(self.sequences) / mean if mean else 0.0


def settings_for(
    database_url: str, replicas: Sequence[str], prm: str, policy: str, load_factor: float
) -> Settings:
    return Settings(
        database_url=database_url,
        endpoints={
            "fleet": EndpointConfig(
                base_urls=[url + "/v1" for url in replicas],
                model="sim-gsm8k",
                server="generic",
                max_concurrency=512,
                routing={"policy": policy, "load_factor": load_factor},
            ),
            "prm": EndpointConfig(base_url=prm, model="sim-prm", kind="reward"),
        },
        expand_batch_samples=256,
    )


def spec(problem: Problem, seed: int) -> JobSpec:
    return JobSpec(
        strategy="beam_search",
        endpoint="fleet",
        prompt=problem.question,
        params={"n": N, "beam_width": WIDTH, "max_depth": DEPTH, "max_tokens": 128},
        verifier={"kind": "math"},
        prm={"kind": "prm", "endpoint": "prm", "protocol": "json", "aggregation": "min"},
        reference=problem.answer,
        seed=seed,
        cache="off",  # each policy generates the same trees afresh
    )


def replica_metrics(replicas: Sequence[str]) -> list[dict[str, int]]:
    return [httpx.get(url + "/metrics", timeout=10).json() for url in replicas]


def run_policy(
    policy: str,
    problems: Sequence[Problem],
    replicas: Sequence[str],
    prm: str,
    workdir: Path,
    load_factor: float = 1.25,
) -> RunResult:
    url = f"sqlite:///{workdir / f'{policy}-{time.monotonic_ns()}.db'}"
    upgrade(url)
    db = Database(url)
    settings = settings_for(url, replicas, prm, policy, load_factor)
    with db.transaction() as session:
        ids = [
            create_job(session, spec(p, 1000 + i), settings, tenant="bench").id
            for i, p in enumerate(problems)
        ]
    for replica in replicas:
        httpx.post(replica + "/reset_prefix_cache", timeout=10).raise_for_status()
        httpx.post(replica + "/metrics/reset", timeout=10).raise_for_status()

    async def go() -> float:
        ctx = EngineContext(settings=settings, db=db, http=make_http_client())
        try:
            began = time.perf_counter()
            await asyncio.gather(*(run_job(ctx, job_id) for job_id in ids))
            return time.perf_counter() - began
        finally:
            await ctx.aclose()

    wall = asyncio.run(go())
    with db.session() as session:
        from ttc_core.store.models import Job

        statuses = [session.get(Job, job_id).status for job_id in ids]
    if any(s != "succeeded" for s in statuses):
        raise RuntimeError(f"{policy}: jobs ended {statuses}")
    snaps = replica_metrics(replicas)
    return RunResult(
        policy=policy,
        wall_s=wall,
        prompt_tokens=sum(m["prefix_cache_queries_total"] for m in snaps),
        prefilled=sum(m["prefilled_tokens_total"] for m in snaps),
        sequences=[m["choices_total"] for m in snaps],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=4, help="beam searches run at once")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--cache-blocks", type=int, default=CACHE_BLOCKS, help="prefix cache of each replica"
    )
    parser.add_argument("--load-factor", type=float, default=1.25, help="routing.load_factor")
    parser.add_argument(
        "--block-size", type=int, default=BLOCK_SIZE, help="tokens per KV block (vLLM: 16)"
    )
    ns = parser.parse_args()
    problems = synthetic_problems(ns.problems, seed=17, steps=8)
    results: dict[str, list[RunResult]] = {p: [] for p in POLICIES}
    with (
        tempfile.TemporaryDirectory() as tmp,
        sim_processes(
            REPLICAS,
            [
                *SIM_ARGS,
                *("--prefix-cache-blocks", str(ns.cache_blocks)),
                *("--block-size", str(ns.block_size)),
            ],
        ) as replicas,
        sim_processes(1, PRM_ARGS) as (prm,),
    ):
        for r in range(ns.rounds):
            order = POLICIES if r % 2 == 0 else POLICIES[::-1]
            for policy in order:
                result = run_policy(policy, problems, replicas, prm, Path(tmp), ns.load_factor)
                results[policy].append(result)
                print(
                    f"round {r + 1} {policy:>15}: wall {result.wall_s:6.2f}s  prompt tokens "
                    f"{result.prompt_tokens:>8}  prefilled {result.prefilled:>8}  sequences "
                    f"per replica {result.sequences}  max share {result.max_share:.3f}",
                    flush=True,
                )
    pa, rr = results["prefix_affinity"], results["round_robin"]
    prefill_ratio = sum(r.prefilled for r in rr) / max(1, sum(r.prefilled for r in pa))
    wall_ratio = statistics.fmean(r.wall_s for r in pa) / statistics.fmean(r.wall_s for r in rr)
    share = max(r.max_share for r in pa)
    print()
    print(
        f"prefilled prompt tokens, round-robin / prefix-aware: {prefill_ratio:.2f}x (target >= 3)"
    )
    print(f"wall time, prefix-aware / round-robin: {wall_ratio:.3f} (target <= 0.8)")
    print(
        f"largest replica's share of the load, prefix-aware: {share:.3f}x the mean (target <= 1.25)"
    )
    print(f"round-robin's largest share: {max(r.max_share for r in rr):.3f}x")
    print(f"cpus: {os.cpu_count()}")


if __name__ == "__main__":
    main()
