"""Problem batches: many problems, one budget, spent where it helps most.

``POST /v1/problem-batches`` writes the batch and one job per problem (a flat voting job that
first draws ``probe`` samples). When a batch's jobs have all finished, the *batch driver
step* (:func:`advance_batch`) reads their votes, gives the next round's share of the
remaining budget to the problems with the largest expected gain in P(correct majority)
(:mod:`ttc_core.search.allocation`), raises those jobs' ``n`` and re-opens them; their own
driver steps draw the extra samples on the same trees. A job of a batch that finishes
hands the executor a ``batch`` follow-up, so the driver step runs again as soon as the
round is over; the reaper re-runs it for a batch that stopped moving (a lost message).
All of it is rows in the database, so a batch survives restarts like a job does.

``compare_uniform`` adds a second arm: the same problems with the same seeds, each given
the uniform split of the same budget. Both arms' first samples are the same samples, so
the comparison is paired: the report states the accuracy difference with a paired
bootstrap interval and McNemar's exact test.

Not to be confused with :mod:`ttc_core.engine.batches` (expansion batches of one job).
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from ttc_core.engine.followup import FollowUp
from ttc_core.engine.runtime import EngineContext
from ttc_core.errors import InputError, LimitError, UnknownNameError
from ttc_core.evals.statistics import paired_difference
from ttc_core.search.allocation import ProblemVotes, allocate, expected_gain
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.service.tenant_limits import SubmissionRate, check_active_jobs, submission_tokens
from ttc_core.settings import Settings
from ttc_core.store.db import Database
from ttc_core.store.expansion_cache import CacheMode
from ttc_core.store.models import (
    TERMINAL_STATUSES,
    Job,
    JobStatus,
    Node,
    NodeStatus,
    ProblemBatch,
    utcnow,
)
from ttc_core.store.queries import append_event, lock_job
from ttc_core.verifiers import MathSpec, VerifierSpec

#: What a batch's ``strategy`` runs per problem: strategies a batch can grow by raising
#: ``n``; ``auto`` is self-consistency whose samples the batch allocates by difficulty.
BATCH_STRATEGIES = {
    "auto": "self_consistency",
    "self_consistency": "self_consistency",
    "best_of_n": "best_of_n",
}
#: ``problem_batches.kind`` of a batch with one budget (evals share the table).
ALLOCATION_KIND = "allocation"
#: Parameters the batch sets itself.
_BATCH_OWNED = ("n", "adaptive", "stop_on_pass")
#: Paired bootstrap resamples of the comparison (seeded: the same batch, the same CI).
BOOTSTRAP_RESAMPLES = 2000


class BatchProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    reference: str | None = Field(default=None, max_length=10_000)


class BatchBudget(BaseModel):
    """The batch's one budget: generated samples or generated tokens, over all problems."""

    model_config = ConfigDict(extra="forbid")

    samples: int | None = Field(default=None, ge=1, le=10_000_000)
    tokens: int | None = Field(default=None, ge=1, le=10_000_000_000)

    @model_validator(mode="after")
    def _one(self) -> BatchBudget:
        if (self.samples is None) == (self.tokens is None):
            raise ValueError("give exactly one of 'samples' or 'tokens'")
        return self


class BatchSpec(BaseModel):
    """A batch submission (``POST /v1/problem-batches``)."""

    model_config = ConfigDict(extra="forbid")

    problems: list[BatchProblem] = Field(min_length=1)
    strategy: str = Field(default="auto", max_length=64)
    endpoint: str = Field(max_length=128)
    params: dict[str, Any] = Field(default_factory=dict)
    verifier: VerifierSpec = Field(default_factory=MathSpec)
    budget: BatchBudget
    allocation: Literal["adaptive", "uniform"] = "adaptive"
    compare_uniform: bool = False
    probe: int = Field(default=4, ge=1, le=64, description="samples per problem before allocating")
    rounds: int = Field(default=3, ge=1, le=32, description="allocation rounds after the probe")
    max_per_problem: int = Field(default=64, ge=1, le=4096)
    seed: int | None = Field(default=None, ge=0, lt=2**31)


# ------------------------------------------------------------------------ creating


def check_batch_size(spec: BatchSpec, settings: Settings) -> None:
    if len(spec.problems) > settings.max_batch_problems:
        raise LimitError(
            f"{len(spec.problems)} problems; this server takes at most "
            f"{settings.max_batch_problems} per batch",
            field="problems",
            status=413,
        )


def create_batch(
    session: Session, spec: BatchSpec, settings: Settings, *, tenant: str
) -> tuple[ProblemBatch, list[str]]:
    """Validate, then write the batch and its jobs (one transaction is the caller's);
    returns the batch and the job ids whose first driver steps to start after commit."""
    check_batch_size(spec, settings)
    job_strategy = BATCH_STRATEGIES.get(spec.strategy)
    if job_strategy is None:
        raise UnknownNameError(
            f"a batch grows its jobs' n: strategy must be one of {sorted(BATCH_STRATEGIES)}",
            field="strategy",
        )
    for key in _BATCH_OWNED:
        if key in spec.params:
            raise InputError(f"the batch sets {key} itself; leave it out", field=f"params.{key}")
    count = len(spec.problems)
    if spec.budget.samples is not None and spec.budget.samples < spec.probe * count:
        raise InputError(
            f"budget.samples={spec.budget.samples} cannot even probe {count} problems with "
            f"{spec.probe} samples each",
            field="budget.samples",
        )
    if spec.probe > spec.max_per_problem:
        raise InputError("probe cannot exceed max_per_problem", field="probe")
    batch_id = str(uuid.uuid4())
    seed = spec.seed if spec.seed is not None else secrets.randbelow(2**31)
    arms = [spec.allocation]
    if spec.compare_uniform and spec.allocation == "adaptive":
        arms.append("uniform")
    jobs: dict[str, list[str]] = {arm: [] for arm in arms}
    batch = ProblemBatch(
        id=batch_id,
        tenant=tenant,
        kind=ALLOCATION_KIND,
        status=JobStatus.queued,
        spec={**spec.model_dump(exclude={"problems"}), "seed": seed, "job_strategy": job_strategy},
        problems=[p.model_dump() for p in spec.problems],
    )
    session.add(batch)
    session.flush()
    for arm in arms:
        for i, problem in enumerate(spec.problems):
            job_spec = JobSpec(
                strategy=job_strategy,
                endpoint=spec.endpoint,
                prompt=problem.prompt,
                params={**spec.params, "n": spec.probe},
                verifier=spec.verifier,
                reference=problem.reference,
                seed=seed,  # the same seed in both arms: paired samples
                # Each arm pays for its own samples: what the arms spend is compared.
                cache=CacheMode.off,
            )
            try:
                job = create_job(session, job_spec, settings, tenant=tenant)
            except InputError as exc:
                field = exc.field or ""
                if field in ("prompt", "reference"):
                    exc.field = f"problems.{i}.{field}"
                raise
            job.batch_id = batch_id
            jobs[arm].append(job.id)
    batch.state = {"round": 0, "jobs": jobs, "log": []}  # assigned whole: a JSON column
    return batch, [job_id for arm in arms for job_id in jobs[arm]]


def batch_job_count(spec: BatchSpec) -> int:
    """How many jobs the batch writes: one per problem and arm."""
    arms = 2 if spec.compare_uniform and spec.allocation == "adaptive" else 1
    return arms * len(spec.problems)


def submit_batch(
    *, db: Database, settings: Settings, rate: SubmissionRate, tenant: str, spec: BatchSpec
) -> tuple[ProblemBatch, list[str]]:
    """Create the batch under the tenant's limits, each of its jobs counted as a job
    submission: the rate takes one token per job, and the active-job quota counts them
    all (inside the writing transaction, with the tenant's row locked, as for jobs).
    The caller dispatches the returned jobs' first driver steps after this returns."""
    check_batch_size(spec, settings)  # before the rate: too large is 413 whatever the rate
    with (
        submission_tokens(rate, tenant, settings, count=batch_job_count(spec)),
        db.transaction() as session,
    ):
        batch, job_ids = create_batch(session, spec, settings, tenant=tenant)
        check_active_jobs(session, tenant, settings)
    return batch, job_ids


# ------------------------------------------------------------------ driver step


def advance_batch(ctx: EngineContext, batch_id: str) -> list[FollowUp]:
    """Plan the batch's next round once its jobs have all finished; returns the jobs'
    driver steps to run. Safe to run twice: a round starts only when no job is live."""
    with ctx.db.transaction() as session:
        batch = session.get(ProblemBatch, batch_id, with_for_update=True)
        if batch is None or batch.status in TERMINAL_STATUSES:
            return []
        jobs = _jobs(session, batch)
        if any(job.status not in TERMINAL_STATUSES for job in jobs.values()):
            return []  # the round is still running; its last job brings us back
        batch.status = JobStatus.running
        state = dict(batch.state)
        votes = _votes(session, list(jobs))
        grow: dict[str, int] = {}
        entry: dict[str, Any] = {"round": state["round"]}
        if state["round"] == 0 and "uniform" in state["jobs"]:
            entry["uniform_n"] = _grow_uniform(batch, jobs, state["jobs"]["uniform"], grow)
        if batch.spec["allocation"] == "adaptive":
            entry.update(_allocate_round(batch, jobs, votes, state, grow))
        followups = [FollowUp("advance", job_id) for job_id in grow]
        for job_id, n in grow.items():
            _reopen(session, job_id, n, batch.id, state["round"])
        state["round"] += 1
        state["log"] = [*state["log"], entry]
        batch.state = state
        batch.updated_at = utcnow()
        if not followups:
            batch.result = report(session, batch)["summary"]
            batch.status = JobStatus.succeeded
            batch.finished_at = utcnow()
        return followups


def _jobs(session: Session, batch: ProblemBatch) -> dict[str, Job]:
    rows = session.scalars(select(Job).where(Job.batch_id == batch.id))
    return {job.id: job for job in rows}


def _votes(session: Session, job_ids: Sequence[str]) -> dict[str, list[str | None]]:
    """Answers of each job's root samples (usable ones; ``None``: no answer)."""
    out: dict[str, list[str | None]] = defaultdict(list)
    rows = session.execute(
        select(Node.job_id, Node.answer).where(
            Node.job_id.in_(list(job_ids)),
            Node.depth == 1,
            Node.status == NodeStatus.done,
        )
    )
    for job_id, answer in rows:
        out[job_id].append(answer)
    return out


def _tokens_per_sample(jobs: Sequence[Job]) -> float:
    samples = sum(j.node_count for j in jobs)
    return sum(j.completion_tokens for j in jobs) / samples if samples else 1.0


def _budget_samples(batch: ProblemBatch, jobs: Sequence[Job]) -> int:
    """The whole budget in samples (a token budget at the probe's tokens per sample)."""
    budget = batch.spec["budget"]
    if budget.get("samples") is not None:
        return int(budget["samples"])
    return int(budget["tokens"] // max(1e-9, _tokens_per_sample(jobs)))


def _spent_samples(batch: ProblemBatch, jobs: Sequence[Job]) -> int:
    budget = batch.spec["budget"]
    if budget.get("samples") is not None:
        return sum(j.node_count for j in jobs)
    return math.ceil(sum(j.completion_tokens for j in jobs) / max(1e-9, _tokens_per_sample(jobs)))


def _grow_uniform(
    batch: ProblemBatch, jobs: dict[str, Job], arm: list[str], grow: dict[str, int]
) -> int:
    """The uniform split: every problem gets budget / problems samples."""
    share = _budget_samples(batch, [jobs[i] for i in arm]) // len(arm)
    n = max(int(batch.spec["probe"]), min(share, int(batch.spec["max_per_problem"])))
    for job_id in arm:
        if n > jobs[job_id].node_count:
            grow[job_id] = n
    return n


def _allocate_round(
    batch: ProblemBatch,
    jobs: dict[str, Job],
    votes: dict[str, list[str | None]],
    state: dict[str, Any],
    grow: dict[str, int],
) -> dict[str, Any]:
    arm = state["jobs"]["adaptive"]
    arm_jobs = [jobs[i] for i in arm]
    rounds_left = int(batch.spec["rounds"]) - state["round"]
    left = _budget_samples(batch, arm_jobs) - _spent_samples(batch, arm_jobs)
    if rounds_left <= 0 or left <= 0:
        return {"budget_left": max(0, left), "allocated": 0}
    this_round = left if rounds_left == 1 else -(-left // rounds_left)
    problems = [
        ProblemVotes(
            tuple(Counter(a for a in votes.get(i, []) if a is not None).values()),
            jobs[i].node_count,
        )
        for i in arm
    ]
    cap = int(batch.spec["max_per_problem"])
    extra = allocate(
        problems,
        this_round,
        cap=max(0, cap - min(p.samples for p in problems)),
    )
    for job_id, problem, k in zip(arm, problems, extra, strict=True):
        k = min(k, cap - problem.samples)
        if k > 0:
            grow[job_id] = problem.samples + k
    return {
        "budget_left": left,
        "round_budget": this_round,
        "allocated": sum(max(0, n - jobs[i].node_count) for i, n in grow.items() if i in arm),
        "problems": sum(1 for i in grow if i in arm),
        "expected_gain": round(expected_gain(problems, extra), 4),
    }


def _reopen(session: Session, job_id: str, n: int, batch_id: str, round_: int) -> None:
    """Raise a finished job's ``n`` and run it again on its tree (the next driver step
    draws the missing samples and re-selects)."""
    job = lock_job(session, job_id)
    if job is None or job.status == JobStatus.cancelled:
        return
    before = job.node_count
    job.params = {**job.params, "n": n}
    job.status = JobStatus.running
    job.finished_at = None
    append_event(
        session, job.id, "batch_allocated", batch_id=batch_id, round=round_, k=n - before, n=n
    )
    # Live readers (SSE, the UI) see the finished job start again.
    append_event(session, job.id, "status_changed", status=JobStatus.running, action="allocate")


# ---------------------------------------------------------------------- reporting


def report(session: Session, batch: ProblemBatch) -> dict[str, Any]:
    """Per-problem spend and answers, per-arm totals and the paired comparison."""
    jobs = _jobs(session, batch)
    arms: dict[str, list[str]] = batch.state.get("jobs", {})
    problems: list[dict[str, Any]] = []
    for i, problem in enumerate(batch.problems):
        row: dict[str, Any] = {"index": i, "reference": problem.get("reference")}
        for arm, ids in arms.items():
            job = jobs[ids[i]]
            result = job.result or {}
            row[arm] = {
                "job_id": job.id,
                "status": job.status,
                "answer": result.get("answer"),
                "correct": result.get("correct"),
                "samples": job.node_count,
                "completion_tokens": job.completion_tokens,
            }
        problems.append(row)
    summary: dict[str, Any] = {"arms": {}}
    for arm in arms:
        cells = [p[arm] for p in problems]
        judged = [c["correct"] for c in cells if c["correct"] is not None]
        summary["arms"][arm] = {
            "samples": sum(c["samples"] for c in cells),
            "completion_tokens": sum(c["completion_tokens"] for c in cells),
            "finished": sum(1 for c in cells if c["status"] in TERMINAL_STATUSES),
            "accuracy": round(sum(judged) / len(judged), 4) if judged else None,
        }
    if "adaptive" in arms and "uniform" in arms:
        summary["comparison"] = compare(
            [p["adaptive"]["correct"] for p in problems],
            [p["uniform"]["correct"] for p in problems],
            seed=int(batch.spec.get("seed", 0)),
        )
    return {"summary": summary, "problems": problems}


def compare(a: Sequence[bool | None], b: Sequence[bool | None], *, seed: int) -> dict[str, Any]:
    """Paired accuracy difference a - b (adaptive - uniform): a seeded bootstrap 95%
    interval over problems and McNemar's exact test on the discordant pairs."""
    pairs = [(int(x), int(y)) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    out = paired_difference(
        [x for x, _ in pairs], [y for _, y in pairs], seed=seed, resamples=BOOTSTRAP_RESAMPLES
    )
    if pairs:
        out["only_adaptive_right"] = int(out.pop("only_a_right"))
        out["only_uniform_right"] = int(out.pop("only_b_right"))
    return out


# ------------------------------------------------------------------ failures, reaper


def fail_batch(ctx: EngineContext, batch_id: str, error: str) -> None:
    """Mark a batch failed with the reason (its jobs keep what they have)."""
    with ctx.db.transaction() as session:
        batch = session.get(ProblemBatch, batch_id, with_for_update=True)
        if batch is None or batch.status in TERMINAL_STATUSES:
            return
        batch.status = JobStatus.failed
        batch.error = error[:2000]
        batch.finished_at = utcnow()


def find_stalled_batches(db: Database, *, stall_s: float) -> list[FollowUp]:
    """Live batches untouched for ``stall_s`` whose jobs have all finished: their driver
    step was lost (a message, a killed worker), so it runs again (safe to run twice)."""
    before = utcnow() - dt.timedelta(seconds=stall_s)
    out: list[FollowUp] = []
    with db.transaction() as session:
        live = session.scalars(
            select(ProblemBatch).where(
                ProblemBatch.status.in_([JobStatus.queued, JobStatus.running]),
                ProblemBatch.updated_at < before,
            )
        ).all()
        for batch in live:
            statuses = session.scalars(select(Job.status).where(Job.batch_id == batch.id)).all()
            if all(s in TERMINAL_STATUSES for s in statuses):
                batch.updated_at = utcnow()  # the next sweep waits a full stall_s again
                out.append(FollowUp("batch", batch.id))
    return out
