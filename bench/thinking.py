"""Budget forcing (s1) against ttc_sim: accuracy vs the minimum thinking length.

For each minimum, ``--problems`` synthetic problems are each solved by a ``think`` job
(one forced thought, then the answer) in process: SQLite, the local executor, the
simulated model over HTTP with its default thinking knobs (segments ~Gamma(mean 150 tokens,
cv 0.5); p(L) = 0.3 + 0.6 (1 - exp(-L / 400))). The prediction for a setting is the mean of
p(L) over the lengths the thoughts really had (read from the stored think nodes, every
token the model saw, forced words included); its standard error is sqrt(sum p(1-p)) / N.
The cap is checked on every thought (stored node tokens) and in the jobs' usage.

    .venv/bin/python bench/thinking.py [--problems 200] [--minimums 0,200,400,800,1600]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from ttc_cli.migrate import upgrade
from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.executor import run_job
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Job, Node
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import synthetic_problems
from ttc_sim.thinking import accuracy_at
from ttc_sim.tokens import count_tokens

CAP = 4000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--minimums", default="0,200,400,800,1600")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    minimums = [int(m) for m in args.minimums.split(",")]
    problems = synthetic_problems(args.problems, seed=args.seed)
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'thinking.db'}"
    upgrade(url)
    cfg = SimConfig(base_latency_s=0.002, per_token_latency_s=0.0, slots=256)
    with SimServer(cfg) as sim:
        settings = Settings(
            database_url=url,
            endpoints={
                "sim": EndpointConfig(base_url=sim.base_url, model="sim-gsm8k", max_concurrency=128)
            },
        )
        ctx = EngineContext(settings=settings, db=Database(url), http=make_http_client())
        jobs: dict[str, int] = {}
        with ctx.db.transaction() as session:
            for minimum in minimums:
                for i, p in enumerate(problems):
                    spec = JobSpec(
                        strategy="think",
                        endpoint="sim",
                        prompt=p.question,
                        reference=p.answer,
                        thinking={"min_tokens": minimum, "max_tokens": CAP, "max_forcings": 64},
                        seed=args.seed * 1000 + i,
                    )
                    jobs[create_job(session, spec, settings, tenant="bench").id] = minimum

        async def run_all() -> None:
            try:
                await asyncio.gather(*(run_job(ctx, j) for j in jobs))
            finally:
                await ctx.aclose()

        began = time.perf_counter()
        asyncio.run(run_all())
        wall = time.perf_counter() - began
    print(f"{len(jobs)} jobs in {wall:.0f} s; cap {CAP} thinking tokens per thought")
    print(
        "| min thinking tokens | mean thought (tokens) | forcings/job | accuracy | "
        "curve's prediction ± 1 se | z | max thought | job usage ≤ cap |"
    )
    print("|---|---|---|---|---|---|---|---|")
    cfg_default = SimConfig()
    with ctx.db.session() as session:
        for minimum in minimums:
            ids = [j for j, m in jobs.items() if m == minimum]
            thoughts = list(
                session.scalars(select(Node).where(Node.job_id.in_(ids), Node.role == "think"))
            )
            ps = [accuracy_at(count_tokens(t.text.strip()), cfg_default) for t in thoughts]
            right = session.scalar(
                select(func.count(Job.id)).where(
                    Job.id.in_(ids), Job.status == "succeeded", Job.result["correct"].as_boolean()
                )
            )
            usage_ok = all(
                (job.thinking_tokens or 0) <= CAP
                for job in session.scalars(select(Job).where(Job.id.in_(ids)))
            )
            n = len(ids)
            acc = (right or 0) / n
            predicted = sum(ps) / n
            se = sum(p * (1 - p) for p in ps) ** 0.5 / n
            print(
                f"| {minimum} | {sum(t.completion_tokens for t in thoughts) / n:.0f} | "
                f"{sum(t.meta['forcings'] for t in thoughts) / n:.2f} | {acc:.3f} | "
                f"{predicted:.3f} ± {se:.3f} | {(acc - predicted) / se:+.2f} | "
                f"{max(t.completion_tokens for t in thoughts)} | {usage_ok} |"
            )


if __name__ == "__main__":
    main()
