"""Adaptive compute on problems of varying difficulty, measured with real jobs.

Both experiments run in-process: SQLite with migrations applied, the local executor (the
same step loop as the service) and the simulator over HTTP. Problems are the simulator's
``graded`` family: per-problem sample accuracy p ~ Beta(3, 1) keyed by the problem id
(mostly easy, a tail of hard and hopeless ones), wrong samples on 4 distractors with
weights 1, 1/2, 1/4, 1/8.

(a) adaptive self-consistency against fixed N=40: the same problems and job seeds, so the
    adaptive job's samples are the first samples of the fixed job; Beta stopping rule at
    confidence 0.95, first check after 4 samples, then one sample per round.
(b) a batch with one budget (6 or 8 samples per problem on average), allocated
    adaptively, against the uniform split of the same budget in the same batch
    (``compare_uniform``: same problems, same seeds); the gain with a paired bootstrap 95%
    interval and McNemar's exact test.

The jobs get no reference: ttc's self-consistency breaks vote ties by verifier score, and
with a reference that score *is* the reference check, which would grade ties for free
(more often at even sample counts). Answers are graded here instead, after the run.

Run: ``.venv/bin/python bench/adaptive.py [--problems 200] [--batch-problems 400]
[--budgets 6,8] [--seed 0]`` (several minutes on a loaded 2-core host).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ttc_cli.migrate import upgrade
from ttc_core.engine.followup import FollowUp
from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.executor import run_followups
from ttc_core.problem_batches.rounds import BatchSpec, compare, create_batch, report
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Job, ProblemBatch
from ttc_sim.answers import answers_match
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import Problem, graded_problems

FIXED_N = 40
ADAPTIVE = {"rule": "beta", "confidence": 0.95, "min_samples": 4, "batch": 1}
BATCH_SAMPLES_PER_PROBLEM = 8
VERIFIER = {"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"}


def sim_config() -> SimConfig:
    return SimConfig(base_latency_s=0.001, per_token_latency_s=0.0, slots=1024)


@dataclass
class Bench:
    settings: Settings
    db: Database


@contextmanager
def bench_for(sim: SimServer) -> Iterator[Bench]:
    """A fresh SQLite database with migrations applied; endpoint ``sim`` on ``sim``."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ttc.db'}"
        upgrade(url)
        settings = Settings(
            database_url=url,
            endpoints={
                "sim": EndpointConfig(
                    base_url=sim.base_url, model="sim-graded", max_concurrency=256
                )
            },
            max_batch_problems=2000,
        )
        db = Database(url)
        try:
            yield Bench(settings, db)
        finally:
            db.engine.dispose()


def run(bench: Bench, followups: Sequence[FollowUp]) -> None:
    async def go() -> None:
        ctx = EngineContext(settings=bench.settings, db=bench.db, http=make_http_client())
        try:
            await run_followups(ctx, list(followups))
        finally:
            await ctx.aclose()

    asyncio.run(go())


# ------------------------------------------------------------ (a) adaptive stopping


@dataclass(frozen=True)
class SCResult:
    label: str
    correct: list[bool]
    samples: list[int]

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct)

    @property
    def mean_samples(self) -> float:
        return sum(self.samples) / len(self.samples)


def run_self_consistency(
    bench: Bench, problems: Sequence[Problem], params: dict[str, Any], label: str, seed: int
) -> SCResult:
    ids: list[str] = []
    with bench.db.transaction() as session:
        for p in problems:
            spec = JobSpec.model_validate(
                {
                    "strategy": "self_consistency",
                    "endpoint": "sim",
                    "prompt": p.question,
                    "params": params,
                    "verifier": VERIFIER,
                    "seed": seed,
                    "cache": "off",  # samples are what is measured
                }
            )
            ids.append(create_job(session, spec, bench.settings, tenant="bench").id)
    run(bench, [FollowUp("advance", i) for i in ids])
    with bench.db.session() as session:
        jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(ids)))}
        for i in ids:
            if jobs[i].status != "succeeded":
                raise RuntimeError(f"job {i}: {jobs[i].status} {jobs[i].error}")
        return SCResult(
            label,
            [
                graded((jobs[i].result or {}).get("answer"), p)
                for i, p in zip(ids, problems, strict=True)
            ],
            [jobs[i].node_count for i in ids],
        )


def graded(answer: str | None, problem: Problem) -> bool:
    return answer is not None and answers_match(answer, problem.answer)


def adaptive_vs_fixed(bench: Bench, problems: Sequence[Problem], seed: int) -> list[SCResult]:
    fixed = run_self_consistency(bench, problems, {"n": FIXED_N}, f"fixed N={FIXED_N}", seed)
    adaptive = run_self_consistency(
        bench,
        problems,
        {"n": FIXED_N, "adaptive": ADAPTIVE},
        "adaptive (beta, 0.95)",
        seed,
    )
    return [fixed, adaptive]


# ----------------------------------------------------------------- (b) one budget


def run_batch(
    bench: Bench,
    problems: Sequence[Problem],
    seed: int,
    per_problem: int = BATCH_SAMPLES_PER_PROBLEM,
    references: bool = True,
) -> dict[str, Any]:
    """One batch with ``per_problem`` samples per problem on average and the uniform
    split beside it; without ``references`` the arms are graded here (``graded``)."""
    spec = BatchSpec.model_validate(
        {
            "problems": [
                {"prompt": p.question, "reference": p.answer if references else None}
                for p in problems
            ],
            "strategy": "auto",
            "endpoint": "sim",
            "verifier": VERIFIER,
            "budget": {"samples": per_problem * len(problems)},
            "allocation": "adaptive",
            "compare_uniform": True,
            "seed": seed,
        }
    )
    with bench.db.transaction() as session:
        batch, job_ids = create_batch(session, spec, bench.settings, tenant="bench")
        batch_id = batch.id
    run(bench, [FollowUp("advance", i) for i in job_ids])
    with bench.db.session() as session:
        row = session.get(ProblemBatch, batch_id)
        assert row is not None
        if row.status != "succeeded":
            raise RuntimeError(f"batch {batch_id}: {row.status} {row.error}")
        out = {"status": row.status, "rounds": row.state["log"], **report(session, row)}
    if not references:
        right = {
            arm: [
                graded(r[arm]["answer"], p) for r, p in zip(out["problems"], problems, strict=True)
            ]
            for arm in out["summary"]["arms"]
        }
        for arm, marks in right.items():
            out["summary"]["arms"][arm]["accuracy"] = round(sum(marks) / len(marks), 4)
        out["summary"]["comparison"] = compare(right["adaptive"], right["uniform"], seed=seed)
    return out


# ---------------------------------------------------------------------- the table


def sc_table(results: Sequence[SCResult]) -> str:
    fixed = results[0]
    lines = [
        "| method | accuracy | mean samples / problem | samples vs fixed |",
        "|---|---|---|---|",
    ]
    for r in results:
        ratio = fixed.mean_samples / r.mean_samples
        lines.append(
            f"| {r.label} | {r.accuracy:.3f} | {r.mean_samples:.2f} | {ratio:.2f}x fewer |"
        )
    return "\n".join(lines)


def batch_table(result: dict[str, Any]) -> str:
    arms = result["summary"]["arms"]
    lines = ["| arm | accuracy | samples | completion tokens |", "|---|---|---|---|"]
    for arm, row in arms.items():
        lines.append(
            f"| {arm} | {row['accuracy']:.3f} | {row['samples']} | {row['completion_tokens']} |"
        )
    c = result["summary"]["comparison"]
    lines.append("")
    lines.append(
        f"adaptive - uniform: {c['difference']:+.3f} [paired bootstrap 95% CI "
        f"{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] over {c['problems']} problems; only "
        f"adaptive right {c['only_adaptive_right']}, only uniform right "
        f"{c['only_uniform_right']}, McNemar exact p = {c['mcnemar_p']:.4f}"
    )
    return "\n".join(lines)


def main() -> None:  # pragma: no cover - run by hand
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=200, help="(a); 0 skips it")
    parser.add_argument("--batch-problems", type=int, default=400, help="(b); 0 skips it")
    parser.add_argument("--budgets", default="6,8", help="(b): samples per problem")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with SimServer(sim_config()) as sim, bench_for(sim) as bench:
        if args.problems:
            began = time.perf_counter()
            problems = graded_problems(args.problems, seed=args.seed)
            results = adaptive_vs_fixed(bench, problems, seed=args.seed)
            print(f"## (a) {args.problems} graded problems, seed {args.seed}", flush=True)
            print(sc_table(results))
            print(f"({time.perf_counter() - began:.0f} s)", flush=True)
        batch_problems = graded_problems(args.batch_problems, seed=args.seed + 1000)
        for per in [int(b) for b in args.budgets.split(",")] if args.batch_problems else []:
            began = time.perf_counter()
            batch = run_batch(bench, batch_problems, args.seed, per, references=False)
            print(
                f"\n## (b) batch of {args.batch_problems} graded problems (seed "
                f"{args.seed + 1000}), budget {per} samples/problem"
            )
            print(batch_table(batch))
            print(f"rounds: {batch['rounds']}")
            print(f"({time.perf_counter() - began:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
