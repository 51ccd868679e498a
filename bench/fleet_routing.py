"""Prefix-aware routing against round-robin on a fleet of simulated replicas.

Beam search (n=64 candidates per depth, beam width 4, so 16 beams each expanded 4 times,
max depth 8) on synthetic 8-step problems, through ttc's real engine (SQLite, the
in-process executor) against one endpoint of 4 ``ttc_sim`` replicas, each its own process
with its own LRU prefix cache. After one untimed warm-up run, the same jobs (same seeds, so
the same trees: the simulator is deterministic) run once with ``routing.policy:
prefix_affinity`` and once with ``round_robin``, alternating which goes first from round to
round, the caches emptied (``POST /reset_prefix_cache``) before each run.

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

Workloads (``--workload``): ``math`` (the default), MATH-style problems (8 steps of 30-50
tokens, ``## Step k:`` headings, as PRM800K's and search-and-learn's solutions are) under
search-and-learn's system prompt (~140 tokens, the same for every problem), as in Hugging
Face's beam search with a PRM; ``gsm8k``, the first workload: one-line GSM8K-sized steps
(~14 tokens) after the bare question.

Reported per policy, from the replicas' own ``/metrics`` (vLLM's prefix-cache counters):
prompt tokens prefilled (queried minus cache hits), wall time, and the largest replica's
share of the load (its generated sequences over the mean). Targets: prefix-aware prefills
>= 3x fewer prompt tokens, its wall time <= 0.8x round-robin's, no replica above 1.25x the
mean load.

    .venv/bin/python bench/fleet_routing.py [--problems 4] [--rounds 2] [--workload gsm8k]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from ttc_cli.migrate import upgrade
from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.executor import run_job
from ttc_core.inference.client import InferenceClient
from ttc_core.inference.fleet import request_text
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
#: search-and-learn's system prompt for MATH (the recipe of Hugging Face's test-time compute
#: scaling study, beam search with a PRM): it asks for ``## Step k:`` steps.
MATH_SYSTEM_PROMPT = (
    "Solve the following math problem efficiently and clearly:\n\n"
    "- For simple problems (2 steps or fewer):\n"
    "Provide a concise solution with minimal explanation.\n\n"
    "- For complex problems (3 steps or more):\n"
    "Use this step-by-step format:\n\n"
    "## Step 1: [Concise description]\n[Brief explanation and calculations]\n\n"
    "## Step 2: [Concise description]\n[Brief explanation and calculations]\n\n"
    "...\n\n"
    "Regardless of the approach, always conclude with:\n\n"
    "Therefore, the final answer is: $\\boxed{answer}$. I hope it is correct.\n\n"
    "Where [answer] is just the final number or expression that solves the problem."
)
#: ``math``: MATH/PRM800K-style steps (30-50 tokens) under that system prompt; ``gsm8k``:
#: the first workload, one-line GSM8K-style steps (~14 tokens) and the bare question.
WORKLOADS = ("math", "gsm8k")


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
    database_url: str,
    replicas: Sequence[str],
    prm: str,
    policy: str,
    load_factor: float,
    load_measure: str = "recent",
    split_n_above: int = 16,
) -> Settings:
    return Settings(
        database_url=database_url,
        endpoints={
            "fleet": EndpointConfig(
                base_urls=[url + "/v1" for url in replicas],
                model="sim-gsm8k",
                server="generic",
                max_concurrency=512,
                # A large n in one request, for the fleet to split (or not) over replicas.
                max_n_per_request=max(16, split_n_above),
                routing={
                    "policy": policy,
                    "load_factor": load_factor,
                    "load_measure": load_measure,
                    "split_n_above": split_n_above,
                },
            ),
            "prm": EndpointConfig(base_url=prm, model="sim-prm", kind="reward"),
        },
        expand_batch_samples=256,
    )


def spec(problem: Problem, seed: int, workload: str = "math") -> JobSpec:
    text: dict[str, object] = {"prompt": problem.question}
    if workload == "math":
        text = {
            "messages": [
                {"role": "system", "content": MATH_SYSTEM_PROMPT},
                {"role": "user", "content": problem.question},
            ]
        }
    return JobSpec(
        strategy="beam_search",
        endpoint="fleet",
        **text,
        params={"n": N, "beam_width": WIDTH, "max_depth": DEPTH, "max_tokens": 128},
        verifier={"kind": "math"},
        prm={"kind": "prm", "endpoint": "prm", "protocol": "json", "aggregation": "min"},
        reference=problem.answer,
        seed=seed,
        cache="off",  # each policy generates the same trees afresh
    )


@dataclass
class Traced:
    """One generation request as the fleet's replica answered it."""

    policy: str
    replica: str
    n: int
    #: The prompt as routing compared it (rendered prompt or serialized messages).
    text: str
    prompt_tokens: int
    cached_tokens: int
    completions: list[str]


def choice_text(choice: Any) -> str:
    message = choice.get("message") if isinstance(choice, dict) else None
    if isinstance(message, dict):
        return str(message.get("content") or "")
    return str(choice.get("text") or "") if isinstance(choice, dict) else ""


@contextlib.contextmanager
def tracing(policy: list[str]) -> Iterator[list[Traced]]:
    """Record each request the engine sends to the fleet: its replica, its prompt, and the
    prompt and cached tokens of the replica's usage (``policy[0]``: the run's policy)."""
    rows: list[Traced] = []
    original = InferenceClient._post

    async def post(
        self: InferenceClient,
        path: str,
        body: dict[str, Any],
        *,
        native: bool = False,
        base: str | None = None,
    ) -> Any:
        payload = await original(self, path, body, native=native, base=base)
        if self.name == "fleet" and isinstance(payload, dict):
            usage = payload.get("usage") or {}
            details = usage.get("prompt_tokens_details") or {}
            rows.append(
                Traced(
                    policy[0],
                    base or "",
                    int(body.get("n", 1)),
                    request_text(body),
                    int(usage.get("prompt_tokens", 0)),
                    int(details.get("cached_tokens", 0)),
                    [choice_text(c) for c in payload.get("choices") or []],
                )
            )
        return payload

    InferenceClient._post = post  # type: ignore[method-assign]
    try:
        yield rows
    finally:
        InferenceClient._post = original  # type: ignore[method-assign]


def where_prefill_goes(rows: Sequence[Traced], delimiter: str = "\n\n") -> dict[str, list[int]]:
    """Requests and tokens prefilled by kind: the root's pieces, first steps, requests on a
    replica that generated their path's last step, and requests elsewhere (moved by the
    load bound, or sent where routing did not know the path)."""
    made: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        for text in row.completions:
            made[row.text + text + delimiter].add(row.replica)
    out: dict[str, list[int]] = {}
    for row in rows:
        if row.n > WIDTH:
            kind = "root pieces (the question, on every replica)"
        elif row.text not in made:
            kind = "first steps (children of the root)"
        elif row.replica in made[row.text]:
            kind = "on a replica that generated the path's last step"
        else:
            kind = "elsewhere (the path's last step not there)"
        counts = out.setdefault(kind, [0, 0])
        counts[0] += 1
        counts[1] += row.prompt_tokens - row.cached_tokens
    return out


def replica_metrics(replicas: Sequence[str]) -> list[dict[str, int]]:
    return [httpx.get(url + "/metrics", timeout=10).json() for url in replicas]


def run_policy(
    policy: str,
    problems: Sequence[Problem],
    replicas: Sequence[str],
    prm: str,
    workdir: Path,
    load_factor: float = 1.25,
    workload: str = "math",
    load_measure: str = "recent",
    split_n_above: int = 16,
) -> RunResult:
    url = f"sqlite:///{workdir / f'{policy}-{time.monotonic_ns()}.db'}"
    upgrade(url)
    db = Database(url)
    settings = settings_for(url, replicas, prm, policy, load_factor, load_measure, split_n_above)
    with db.transaction() as session:
        ids = [
            create_job(session, spec(p, 1000 + i, workload), settings, tenant="bench").id
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
    parser.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="math",
        help="math: MATH-style steps and search-and-learn's system prompt; gsm8k: short steps",
    )
    parser.add_argument(
        "--split-n-above",
        type=int,
        default=16,
        help="routing.split_n_above, and the requests' largest n (64: the root's n=64 "
        "stays one request, on one replica)",
    )
    parser.add_argument(
        "--trace", type=Path, help="write every request (JSON lines) here, and break it down"
    )
    parser.add_argument(
        "--load-measure",
        choices=("recent", "in_flight"),
        default="recent",
        help="routing.load_measure: what the bound compares",
    )
    ns = parser.parse_args()
    style = "math" if ns.workload == "math" else "plain"
    problems = synthetic_problems(ns.problems, seed=17, steps=8, style=style)
    results: dict[str, list[RunResult]] = {p: [] for p in POLICIES}
    current = [""]
    with (
        tracing(current) if ns.trace else contextlib.nullcontext([]) as traced,
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
        # Untimed: the first run of a process pays its imports and the servers' first
        # requests, which would count against whichever policy went first.
        current[0] = "warm-up"
        run_policy(
            "round_robin", problems[:1], replicas, prm, Path(tmp), ns.load_factor, ns.workload
        )
        for r in range(ns.rounds):
            order = POLICIES if r % 2 == 0 else POLICIES[::-1]
            for policy in order:
                current[0] = policy
                result = run_policy(
                    policy,
                    problems,
                    replicas,
                    prm,
                    Path(tmp),
                    ns.load_factor,
                    ns.workload,
                    ns.load_measure,
                    ns.split_n_above,
                )
                results[policy].append(result)
                print(
                    f"round {r + 1} {policy:>15}: wall {result.wall_s:6.2f}s  prompt tokens "
                    f"{result.prompt_tokens:>8}  prefilled {result.prefilled:>8}  sequences "
                    f"per replica {result.sequences}  max share {result.max_share:.3f}",
                    flush=True,
                )
    if ns.trace:
        with ns.trace.open("w") as out:
            for row in traced:
                out.write(json.dumps(asdict(row)) + "\n")
        for policy in POLICIES:
            print(f"{policy}, where the prefill goes (all rounds):")
            kinds = where_prefill_goes([r for r in traced if r.policy == policy])
            for kind, (count, tokens) in kinds.items():
                print(
                    f"  {kind:52} {count:5} requests {tokens:7} tokens {tokens / count:6.1f} each"
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
    # What prefill costs at all: the GPU time of the tokens prefilled, per replica and run
    # (prefills of a replica run one at a time), against the wall time of a run.
    for name, runs in (("round-robin", rr), ("prefix-aware", pa)):
        seconds = statistics.fmean(r.prefilled for r in runs) * PREFILL_S_PER_TOKEN / REPLICAS
        wall = statistics.fmean(r.wall_s for r in runs)
        print(f"prefill time, {name}: {seconds:.2f}s per replica and run (wall {wall:.1f}s)")
    print(f"cpus: {os.cpu_count()}")


if __name__ == "__main__":
    main()
