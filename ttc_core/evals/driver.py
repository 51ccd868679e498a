"""Submitting an eval, its driver step, cancelling it, and its progress.

``POST /v1/evals`` validates every arm against the dataset, writes the eval (a
``problem_batches`` row of kind ``eval`` holding a copy of the rows) and its first wave
of jobs. The *eval driver step* (:func:`advance_eval`) runs whenever one of its jobs
finishes (the ``batch`` follow-up every job of a unit hands back) and starts the next
planned jobs while the eval has fewer than ``eval_max_active_jobs`` live and the tenant
has room under its active-job quota. A driver step lost with a killed worker is re-run
by the reaper's sweep of units whose jobs have all stopped
(``problem_batches.find_stalled_batches``); the jobs themselves resume from their trees
like any job. Job ids follow from their plan number, so a step that runs twice finds
its jobs already written.

When the last job has finished, the step computes the curves once and stores them as
the eval's result; until then they are computed on demand from the finished problems.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ttc_core.engine import control
from ttc_core.engine.followup import FollowUp
from ttc_core.engine.runtime import EngineContext
from ttc_core.errors import InputError, LimitError, NotFoundError
from ttc_core.evals.aggregation import summarize
from ttc_core.evals.datasets import get_dataset
from ttc_core.evals.planning import EvalPlan, job_spec_for, plan_of
from ttc_core.evals.spec import EvalSpec
from ttc_core.service.submission import create_job, validate_job
from ttc_core.service.tenant_limits import SubmissionRate, active_job_room, submission_tokens
from ttc_core.settings import Settings
from ttc_core.store.db import Database
from ttc_core.store.models import TERMINAL_STATUSES, Job, JobStatus, ProblemBatch, utcnow

log = logging.getLogger(__name__)

#: ``problem_batches.kind`` of an eval.
EVAL_KIND = "eval"


# ------------------------------------------------------------------------ submitting


def _check(
    spec: EvalSpec,
    plan: EvalPlan,
    rows: list[dict[str, Any]],
    settings: Settings,
    *,
    admin: bool,
) -> None:
    """Every arm at every grid point on the first row, and every row on each arm's
    first point, as the job it will be (names, parameters, limits): a refusal now
    rather than a failed job later, naming ``arms.<i>.<field>``."""
    if plan.total > settings.max_eval_jobs:
        raise LimitError(
            f"the eval plans {plan.total} jobs ({len(rows)} problems x {plan.per_problem} per "
            f"problem); this server runs at most {settings.max_eval_jobs} per eval",
            field="arms",
            status=413,
        )
    for a, arm in enumerate(spec.arms):
        grid = plan.grids[a]
        points = [(0, v) for v in grid.values] + [(r, grid.values[0]) for r in range(1, len(rows))]
        for r, value in points:
            try:
                job = job_spec_for(arm, grid, value, rows[r], endpoint=spec.endpoint, seed=0)
                validate_job(job, settings, admin=admin)
            except InputError as exc:
                where = exc.field or ""
                if where in ("prompt", "messages", "reference"):
                    raise InputError(f"row {r + 1}: {exc}", field=f"dataset.{where}") from exc
                prefix = "endpoint" if where == "endpoint" else f"arms.{a}.{where}".rstrip(".")
                message = f"arm {arm.name} at {grid.key}={value}: {exc}"
                raise InputError(message, field=prefix) from exc
            except ValueError as exc:  # a grid value the job's budget model refuses
                message = f"arm {arm.name} at {grid.key}={value}: {exc}"
                raise InputError(message, field=f"arms.{a}.grid") from exc


def create_eval(
    session: Session,
    spec: EvalSpec,
    settings: Settings,
    *,
    tenant: str,
    seed: int,
    admin: bool = False,
) -> tuple[ProblemBatch, list[str]]:
    """Validate, then write the eval and its first wave of jobs (the caller commits and
    starts the returned jobs' driver steps). ``admin``: the submitting key is an admin's
    (its jobs may then run what only admins may, e.g. code tests: ``code_tests_admin_only``)."""
    try:
        dataset = get_dataset(session, spec.dataset, tenant=tenant)
    except NotFoundError as exc:  # the eval's input names it: a 422, not the eval's 404
        raise InputError(str(exc), field="dataset") from exc
    rows = list(dataset.rows)
    batch = ProblemBatch(
        id=str(uuid.uuid4()),
        tenant=tenant,
        kind=EVAL_KIND,
        status=JobStatus.queued,
        spec={
            "eval": spec.model_dump(mode="json", exclude_none=True),
            "seed": seed,
            "dataset_name": dataset.name,
            "admin": admin,
        },
        problems=rows,
        state={"next": 0, "ended_by": None},
    )
    plan = EvalPlan(spec, len(rows), eval_id=batch.id, seed=seed)
    _check(spec, plan, rows, settings, admin=admin)
    batch.state = {"next": 0, "total": plan.total, "ended_by": None}
    session.add(batch)
    session.flush()
    started = _start_jobs(session, batch, plan, settings, live=0)
    return batch, started


def submit_eval(
    *,
    db: Database,
    settings: Settings,
    rate: SubmissionRate,
    tenant: str,
    spec: EvalSpec,
    seed: int,
    admin: bool = False,
) -> tuple[ProblemBatch, list[str]]:
    """Create the eval under the tenant's limits: the submission takes one token of the
    tenant's rate, and its jobs start only within the tenant's active-job room (this
    wave and every later one)."""
    with submission_tokens(rate, tenant, settings, count=1), db.transaction() as session:
        return create_eval(session, spec, settings, tenant=tenant, seed=seed, admin=admin)


def _start_jobs(
    session: Session, batch: ProblemBatch, plan: EvalPlan, settings: Settings, *, live: int
) -> list[str]:
    """Write the next planned jobs while the eval and the tenant have room."""
    state = dict(batch.state)
    first = int(state.get("next", 0))
    want = min(settings.eval_max_active_jobs - live, plan.total - first)
    if want <= 0 or state.get("ended_by"):
        return []
    room = active_job_room(session, batch.tenant, settings)
    count = max(0, min(want, room))
    started = []
    for index in range(first, first + count):
        job_id = plan.job_id(index)
        if session.get(Job, job_id) is None:
            planned = plan.at(index)
            spec = plan.job_spec(planned, batch.problems[planned.problem])
            job = create_job(
                session,
                spec,
                settings,
                tenant=batch.tenant,
                job_id=job_id,
                admin=bool(batch.spec.get("admin")),
            )
            job.batch_id = batch.id
        started.append(job_id)
    state["next"] = first + count
    batch.state = state  # assigned whole: a JSON column
    if started and batch.status == JobStatus.queued:
        batch.status = JobStatus.running
    batch.updated_at = utcnow()
    return started


# ------------------------------------------------------------------------ driver step


def totals(session: Session, batch_id: str) -> dict[str, Any]:
    """What the eval's jobs have spent and where they stand."""
    row = session.execute(
        select(
            func.count(Job.id),
            func.count(Job.id).filter(Job.status.in_(list(TERMINAL_STATUSES))),
            func.count(Job.id).filter(Job.status == JobStatus.failed),
            func.coalesce(func.sum(Job.prompt_tokens), 0),
            func.coalesce(func.sum(Job.completion_tokens), 0),
            func.coalesce(func.sum(Job.thinking_tokens), 0),
            func.coalesce(func.sum(Job.requests), 0),
            func.coalesce(func.sum(Job.cost), 0.0),
        ).where(Job.batch_id == batch_id)
    ).one()
    started, finished, failed, prompt, completion, thinking, requests, cost = row
    return {
        "started": int(started),
        "finished": int(finished),
        "failed": int(failed),
        "live": int(started) - int(finished),
        "prompt_tokens": int(prompt),
        "completion_tokens": int(completion),
        "thinking_tokens": int(thinking),
        "requests": int(requests),
        "cost": float(cost),
    }


def _over_budget(batch: ProblemBatch, spent: dict[str, Any]) -> bool:
    budget = batch.spec["eval"].get("budget") or {}
    tokens, cost = budget.get("max_tokens"), budget.get("max_cost")
    return (tokens is not None and spent["completion_tokens"] >= tokens) or (
        cost is not None and spent["cost"] >= cost
    )


def advance_eval(ctx: EngineContext, batch_id: str) -> list[FollowUp]:
    """Start the eval's next jobs, or finish it once every planned job has finished.
    Safe to run twice (the eval's row lock orders the runs; job ids are derived)."""
    with ctx.db.transaction() as session:
        batch = session.get(ProblemBatch, batch_id, with_for_update=True)
        if batch is None or batch.status in TERMINAL_STATUSES:
            return []
        plan = plan_of(batch)
        spent = totals(session, batch.id)
        state = dict(batch.state)
        if not state.get("ended_by") and _over_budget(batch, spent):
            state["ended_by"] = "budget"
            batch.state = state
            _cancel_live(session, batch.id)
            spent = totals(session, batch.id)
        started = _start_jobs(session, batch, plan, ctx.settings, live=spent["live"])
        done = state.get("ended_by") or int(batch.state.get("next", 0)) >= plan.total
        if not started and spent["live"] == 0 and done:
            batch.result = summarize(session, batch, plan, ctx.settings)
            batch.status = JobStatus.succeeded
            batch.finished_at = utcnow()
            state = dict(batch.state)
            state["ended_by"] = state.get("ended_by") or "complete"
            batch.state = state
        batch.updated_at = utcnow()
        return [FollowUp("advance", job_id) for job_id in started]


def _cancel_live(session: Session, batch_id: str) -> int:
    live = session.scalars(
        select(Job.id).where(Job.batch_id == batch_id, Job.status.not_in(list(TERMINAL_STATUSES)))
    ).all()
    for job_id in sorted(live):  # jobs in id order: the lock order of ttc_core.engine.claims
        control.cancel_job(session, job_id)
    return len(live)


def cancel_eval(session: Session, batch: ProblemBatch) -> ProblemBatch:
    """Cancel an eval as a whole: no job starts again and the live ones are cancelled
    (what they generated is kept). Idempotent."""
    session.refresh(batch, with_for_update=True)
    if batch.status not in TERMINAL_STATUSES:
        _cancel_live(session, batch.id)
        state = dict(batch.state)
        state["ended_by"] = "cancelled"
        batch.state = state
        batch.status = JobStatus.cancelled
        batch.finished_at = utcnow()
    return batch


def progress(session: Session, batch: ProblemBatch, plan: EvalPlan) -> dict[str, Any]:
    """Problems and jobs done, tokens, requests, cost, elapsed time and an ETA."""
    spent = totals(session, batch.id)
    finished_ids = set(
        session.scalars(
            select(Job.id).where(Job.batch_id == batch.id, Job.status.in_(list(TERMINAL_STATUSES)))
        )
    )
    problems_done = sum(
        1
        for p in range(plan.problems)
        if all(
            plan.job_id(i) in finished_ids
            for i in range(p * plan.per_problem, (p + 1) * plan.per_problem)
        )
    )
    end = batch.finished_at or utcnow()
    elapsed = max(0.0, (end - batch.created_at).total_seconds())
    finished = spent["finished"]
    eta = None
    if batch.status not in TERMINAL_STATUSES and finished:
        eta = round(elapsed * (plan.total - finished) / finished, 1)
    return {
        "problems": plan.problems,
        "problems_done": problems_done,
        "jobs": plan.total,
        "jobs_started": spent["started"],
        "jobs_done": finished,
        "jobs_failed": spent["failed"],
        "prompt_tokens": spent["prompt_tokens"],
        "completion_tokens": spent["completion_tokens"],
        "thinking_tokens": spent["thinking_tokens"],
        "requests": spent["requests"],
        "cost": round(spent["cost"], 6),
        "elapsed_s": round(elapsed, 1),
        "eta_s": eta,
        "fraction": round(finished / plan.total, 4) if plan.total else 1.0,
    }


__all__ = ["EVAL_KIND", "advance_eval", "cancel_eval", "create_eval", "progress", "submit_eval"]
