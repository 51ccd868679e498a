"""Eval routes: submit an evaluation, read its progress and curves, cancel it, export
its results, draw its plots, list its jobs."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from collections import OrderedDict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from ttc_api import eval_examples
from ttc_api.cursors import newest_units
from ttc_api.deps import (
    DatabaseDep,
    DispatcherDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    SubmissionRateDep,
    TenantDep,
)
from ttc_api.examples import json_example, request_example
from ttc_api.problems import PROBLEM_RESPONSES, problem_responses
from ttc_api.storable import scrub
from ttc_core.engine.followup import FollowUp
from ttc_core.errors import NotFoundError
from ttc_core.evals import aggregation, exports, plots
from ttc_core.evals.driver import EVAL_KIND, cancel_eval, progress, submit_eval
from ttc_core.evals.planning import EvalPlan, plan_of
from ttc_core.evals.spec import EvalSpec
from ttc_core.settings import Settings
from ttc_core.store.models import TERMINAL_STATUSES, Job, ProblemBatch

router = APIRouter(prefix="/v1/evals", tags=["evals"], responses=PROBLEM_RESPONSES)


class EvalAccepted(BaseModel):
    id: str
    status: str
    location: str
    #: Jobs the eval plans in all, and how many started with the submission.
    jobs: int
    started: int


class EvalPublic(BaseModel):
    id: str
    name: str
    status: str
    #: ``complete``, ``budget`` or ``cancelled`` once the eval has ended.
    ended_by: str | None
    dataset: dict[str, Any]
    spec: dict[str, Any]
    #: Problems and jobs done, tokens, requests, cost, elapsed time, ETA.
    progress: dict[str, Any]
    #: One per (arm, grid value): accuracy with its 95% CI, pass@k, usage.
    points: list[dict[str, Any]] | None = None
    #: Pairs of arms at the same grid value: difference, 95% CI, McNemar.
    comparisons: list[dict[str, Any]] | None = None
    by_difficulty: dict[str, Any] | None = None
    error: str | None = None
    created_at: dt.datetime
    finished_at: dt.datetime | None = None


class EvalsPublic(BaseModel):
    data: list[EvalPublic]
    next_cursor: str | None = None


class EvalJob(BaseModel):
    index: int
    job_id: str
    arm: str
    key: str
    value: int
    problem: int
    problem_id: str | None
    seed_index: int
    status: str
    correct: bool | None
    tree_url: str


class EvalJobsPublic(BaseModel):
    data: list[EvalJob]
    next_offset: int | None = None


# What a running eval's jobs say so far: collected at most every LIVE_REFRESH_S per eval
# (pollers share it), and once more after it has ended (then kept: it no longer moves).
_LIVE: OrderedDict[str, tuple[float, str, aggregation.Outcomes]] = OrderedDict()
_LIVE_LOCK = threading.Lock()
_LIVE_SIZE = 16
LIVE_REFRESH_S = 3.0
#: Plots drawn from those outcomes (or from an ended eval's result), by eval, plot,
#: format and the outcomes' time.
_DRAWN: OrderedDict[tuple[str, str, str, str], bytes] = OrderedDict()


def _cached(batch: ProblemBatch) -> tuple[float, str, aggregation.Outcomes] | None:
    with _LIVE_LOCK:
        cached = _LIVE.get(batch.id)
    if cached is None or cached[1] != batch.status:
        return None
    if batch.status in TERMINAL_STATUSES or time.monotonic() - cached[0] < LIVE_REFRESH_S:
        return cached
    return None


def outcomes_of(
    session: Session, batch: ProblemBatch, plan: EvalPlan, settings: Settings
) -> aggregation.Outcomes:
    now = time.monotonic()
    cached = _cached(batch)
    if cached is not None:
        return cached[2]
    with _LIVE_LOCK:
        stale = _LIVE.get(batch.id)
    # A running eval's finished jobs stay as they were: read only the ones since. An
    # ended eval is read afresh once.
    previous = stale[2] if stale is not None and batch.status not in TERMINAL_STATUSES else None
    outcomes = aggregation.collect(session, batch, plan, settings, previous)
    with _LIVE_LOCK:
        _LIVE[batch.id] = (now, batch.status, outcomes)
        _LIVE.move_to_end(batch.id)
        while len(_LIVE) > _LIVE_SIZE:
            _LIVE.popitem(last=False)
    return outcomes


def get_eval(session: Session, eval_id: str, tenant: str | None) -> ProblemBatch:
    batch = session.get(ProblemBatch, eval_id)
    if batch is None or batch.kind != EVAL_KIND or (tenant is not None and batch.tenant != tenant):
        raise NotFoundError(f"no eval {eval_id}")
    return batch


def eval_summary(
    session: Session, batch: ProblemBatch, plan: EvalPlan, settings: Settings
) -> dict[str, Any]:
    """The eval's curves: stored once it has ended, else from the problems finished so
    far."""
    if batch.result is not None:
        return batch.result
    return aggregation.summary_of(batch, outcomes_of(session, batch, plan, settings))


def _public(
    session: Session, batch: ProblemBatch, settings: Settings, *, with_curves: bool
) -> EvalPublic:
    plan = plan_of(batch)
    live = progress(session, batch, plan)
    summary = eval_summary(session, batch, plan, settings) if with_curves else {}
    spec = batch.spec["eval"]
    return EvalPublic(
        id=batch.id,
        name=spec.get("name", ""),
        status=batch.status,
        ended_by=batch.state.get("ended_by") if batch.status in TERMINAL_STATUSES else None,
        dataset={
            "id": spec["dataset"],
            "name": batch.spec.get("dataset_name"),
            "rows": plan.problems,
        },
        spec=scrub({**spec, "seed": batch.spec["seed"]}),
        progress=live,
        points=scrub(summary.get("points")) if with_curves else None,
        comparisons=scrub(summary.get("comparisons")) if with_curves else None,
        by_difficulty=scrub(summary.get("by_difficulty")) if with_curves else None,
        error=batch.error,
        created_at=batch.created_at,
        finished_at=batch.finished_at,
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EvalAccepted,
    responses={202: json_example(eval_examples.EVAL_ACCEPTED), **problem_responses(429)},
    openapi_extra=request_example(eval_examples.EVAL_SUBMIT),
)
def submit(
    spec: EvalSpec,
    response: Response,
    db: DatabaseDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    principal: PrincipalDep,
    rate: SubmissionRateDep,
) -> EvalAccepted:
    """Evaluate arms over a dataset and a grid of compute; runs as ordinary jobs."""
    seed = spec.seed if spec.seed is not None else secrets.randbelow(2**31)
    batch, started = submit_eval(
        db=db,
        settings=settings,
        rate=rate,
        tenant=principal.tenant,
        spec=spec,
        seed=seed,
        admin=principal.admin,
    )
    # Enqueue only after commit: a worker must find the rows it is told about.
    dispatcher.dispatch([FollowUp("advance", job_id) for job_id in started])
    location = f"/v1/evals/{batch.id}"
    response.headers["Location"] = location
    return EvalAccepted(
        id=batch.id,
        status=batch.status,
        location=location,
        jobs=int(batch.state["total"]),
        started=len(started),
    )


@router.get("", response_model=EvalsPublic, responses={200: json_example(eval_examples.EVALS)})
def read_evals(
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> EvalsPublic:
    """List evals with their progress, newest first (cursor-paged; no curves)."""
    rows, next_cursor = newest_units(session, EVAL_KIND, tenant, cursor, limit)
    return EvalsPublic(
        data=[_public(session, b, settings, with_curves=False) for b in rows],
        next_cursor=next_cursor,
    )


@router.get(
    "/{eval_id}", response_model=EvalPublic, responses={200: json_example(eval_examples.EVAL)}
)
def read_eval(
    eval_id: str,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    curves: Annotated[bool, Query(description="false: progress only (cheap, for polling)")] = True,
) -> EvalPublic:
    """An eval's progress, points with 95% CIs, paired comparisons, difficulty breakdown."""
    batch = get_eval(session, eval_id, tenant)
    return _public(session, batch, settings, with_curves=curves)


@router.post(
    "/{eval_id}/cancel",
    response_model=EvalPublic,
    responses={200: json_example(eval_examples.EVAL)},
)
def cancel(eval_id: str, db: DatabaseDep, tenant: TenantDep, settings: SettingsDep) -> EvalPublic:
    """Cancel an eval as a whole: its live jobs stop, no job starts again. Idempotent."""
    with db.transaction() as session:
        cancel_eval(session, get_eval(session, eval_id, tenant))
    with db.session() as session:
        return _public(session, get_eval(session, eval_id, tenant), settings, with_curves=False)


@router.get(
    "/{eval_id}/results",
    responses={
        200: {
            "description": "CSV or JSONL, one row per point, per problem and point, or node",
            "content": {
                "text/csv": {"example": eval_examples.POINTS_CSV},
                "application/x-ndjson": {"example": eval_examples.POINTS_JSONL},
            },
        }
    },
)
def results(
    eval_id: str,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    format: Literal["csv", "jsonl"] = "csv",
    part: Literal["points", "problems", "nodes"] = "points",
) -> Response:
    """Export points (one row per arm and grid value), per-problem results, or nodes."""
    batch = get_eval(session, eval_id, tenant)
    plan = plan_of(batch)
    if part == "points":
        rows = eval_summary(session, batch, plan, settings)["points"]
    elif part == "problems":
        rows = aggregation.problem_rows(batch, outcomes_of(session, batch, plan, settings))
    else:
        rows = exports.node_rows(session, batch, plan)
    rows = scrub(rows)
    name = f"eval-{batch.id[:8]}-{part}"
    if format == "csv":
        body, media = exports.to_csv(rows), "text/csv; charset=utf-8"
    else:
        body, media = exports.to_jsonl(rows), "application/x-ndjson"
    disposition = f'inline; filename="{name}.{format}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


@router.get(
    "/{eval_id}/plots/{plot}",
    responses={
        200: {
            "description": "the plot as PNG or SVG",
            "content": {"image/png": {}, "image/svg+xml": {}},
        }
    },
)
def plot(
    eval_id: str,
    plot: str,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    rev: Annotated[
        str | None,
        Query(max_length=64, pattern=r"^[\w.-]*$", description="any value; a new one refetches"),
    ] = None,
) -> Response:
    """A plot: ``accuracy_vs_n``, ``accuracy_vs_tokens`` or ``by_difficulty``, ``.png`` or
    ``.svg``."""
    name, _, fmt = plot.rpartition(".")
    if name not in plots.PLOTS or fmt not in plots.FORMATS:
        raise NotFoundError(f"no plot {plot!r}; plots: {', '.join(plots.PLOTS)} as .png or .svg")
    batch = get_eval(session, eval_id, tenant)
    plan = plan_of(batch)
    summary = eval_summary(session, batch, plan, settings)
    # Drawn once per state of the curves: the stored result, or the outcomes in the cache.
    cached = _cached(batch)
    version = "final" if batch.result is not None else (cached[0] if cached else time.monotonic())
    key = (batch.id, name, fmt, str(version))
    with _LIVE_LOCK:
        body = _DRAWN.get(key)
    if body is None:
        title = batch.spec["eval"].get("name") or f"eval {batch.id[:8]}"
        body = plots.render(summary, name, fmt, title=title)
        with _LIVE_LOCK:
            _DRAWN[key] = body
            while len(_DRAWN) > 6 * _LIVE_SIZE:
                _DRAWN.popitem(last=False)
    media = "image/png" if fmt == "png" else "image/svg+xml"
    return Response(body, media_type=media, headers={"Cache-Control": "no-store"})


@router.get(
    "/{eval_id}/jobs",
    response_model=EvalJobsPublic,
    responses={200: json_example(eval_examples.EVAL_JOBS)},
)
def read_eval_jobs(
    eval_id: str,
    session: SessionDep,
    tenant: TenantDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EvalJobsPublic:
    """The eval's jobs in plan order, each with its arm, grid value, problem and tree."""
    batch = get_eval(session, eval_id, tenant)
    plan = plan_of(batch)
    started = int(batch.state.get("next", 0))
    indices = list(range(offset, min(started, offset + limit)))
    ids = [plan.job_id(i) for i in indices]
    jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(ids)))}
    data = []
    for i, job_id in zip(indices, ids, strict=True):
        job = jobs.get(job_id)
        if job is None:
            continue
        planned = plan.at(i)
        data.append(
            EvalJob(
                index=i,
                job_id=job_id,
                arm=plan.arm_names(planned),
                key=plan.grids[planned.arm].key,
                value=plan.value(planned),
                problem=planned.problem,
                problem_id=batch.problems[planned.problem].get("id"),
                seed_index=planned.seed_index,
                status=job.status,
                correct=(job.result or {}).get("correct"),
                tree_url=f"/ui/jobs/{job_id}/tree",
            )
        )
    more = offset + limit < started
    return EvalJobsPublic(data=data, next_offset=offset + limit if more else None)
