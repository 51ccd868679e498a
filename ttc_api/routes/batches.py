"""Problem batch routes: submit many problems with one budget, read, list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel

from ttc_api import examples
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
from ttc_api.problems import PROBLEM_RESPONSES, problem_responses
from ttc_api.storable import scrub
from ttc_core.engine.followup import FollowUp
from ttc_core.errors import NotFoundError
from ttc_core.problem_batches import rounds as problem_batches
from ttc_core.problem_batches.rounds import ALLOCATION_KIND, BatchSpec, report
from ttc_core.store.models import ProblemBatch

router = APIRouter(
    prefix="/v1/problem-batches", tags=["problem-batches"], responses=PROBLEM_RESPONSES
)


class BatchAccepted(BaseModel):
    id: str
    status: str
    location: str
    jobs: int


class BatchPublic(BaseModel):
    id: str
    status: str
    spec: dict[str, Any]
    #: Allocation rounds so far: budget left, samples allocated, expected gain.
    rounds: list[dict[str, Any]]
    #: Per arm: samples, tokens, finished problems, accuracy (with references); and the
    #: paired comparison with the uniform split when it was asked for.
    summary: dict[str, Any]
    #: Per problem and arm: job, status, answer, correct, samples, tokens.
    problems: list[dict[str, Any]] | None = None
    error: str | None = None


class BatchesPublic(BaseModel):
    data: list[BatchPublic]
    next_cursor: str | None = None


def _get(session: SessionDep, batch_id: str, tenant: str | None) -> ProblemBatch:
    batch = session.get(ProblemBatch, batch_id)
    if (
        batch is None
        or batch.kind != ALLOCATION_KIND
        or (tenant is not None and batch.tenant != tenant)
    ):
        raise NotFoundError(f"no batch {batch_id}")
    return batch


def _public(session: SessionDep, batch: ProblemBatch, *, problems: bool) -> BatchPublic:
    live = report(session, batch)
    return BatchPublic(
        id=batch.id,
        status=batch.status,
        spec=scrub(batch.spec),
        rounds=scrub(list(batch.state.get("log", []))),
        summary=scrub(live["summary"]),
        problems=scrub(live["problems"]) if problems else None,
        error=scrub(batch.error),
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    responses={202: examples.json_example(examples.BATCH_ACCEPTED), **problem_responses(429)},
    openapi_extra=examples.request_example(examples.BATCH_SUBMIT),
)
def submit_batch(
    spec: BatchSpec,
    response: Response,
    db: DatabaseDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    principal: PrincipalDep,
    rate: SubmissionRateDep,
) -> BatchAccepted:
    """Submit problems with one budget; ttc probes all, then spends the rest where it helps."""
    batch, job_ids = problem_batches.submit_batch(
        db=db, settings=settings, rate=rate, tenant=principal.tenant, spec=spec
    )
    # Enqueue only after commit: a worker must find the rows it is told about.
    dispatcher.dispatch([FollowUp("advance", job_id) for job_id in job_ids])
    location = f"/v1/problem-batches/{batch.id}"
    response.headers["Location"] = location
    return BatchAccepted(id=batch.id, status=batch.status, location=location, jobs=len(job_ids))


@router.get(
    "", response_model=BatchesPublic, responses={200: examples.json_example(examples.BATCHES)}
)
def read_batches(
    session: SessionDep,
    tenant: TenantDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> BatchesPublic:
    """List batches, newest first (cursor-paged; per-problem rows left out)."""
    rows, next_cursor = newest_units(session, ALLOCATION_KIND, tenant, cursor, limit)
    return BatchesPublic(
        data=[_public(session, b, problems=False) for b in rows], next_cursor=next_cursor
    )


@router.get(
    "/{batch_id}",
    response_model=BatchPublic,
    responses={200: examples.json_example(examples.BATCH)},
)
def read_batch(batch_id: str, session: SessionDep, tenant: TenantDep) -> BatchPublic:
    """A batch's status, allocation rounds, per-problem spend and answers, accuracy."""
    return _public(session, _get(session, batch_id, tenant), problems=True)
