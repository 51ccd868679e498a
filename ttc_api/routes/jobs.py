"""Job routes: submit, read, list, cancel, pause, resume (events: ``routes.events``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from ttc_api.deps import (
    DatabaseDep,
    DispatcherDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    SubmissionRateDep,
    TenantDep,
)
from ttc_api.examples import SUBMIT_EXAMPLES
from ttc_api.problems import PROBLEM_RESPONSES, STATE_PROBLEM_RESPONSES, problem_responses
from ttc_api.schemas import JobAccepted, JobPublic, JobsPublic
from ttc_api.selection import SelectionExplained, explain_selection
from ttc_api.services import NO_NUL, get_job, job_public, list_jobs
from ttc_api.submit import JobCreate, submit
from ttc_core.engine.control import cancel_job, pause_job, resume_job
from ttc_core.observability import tracing
from ttc_core.store.models import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)


SUBMIT_DESCRIPTION = """\
Submit a search job; poll the returned `Location` for its result.

**Idempotency-Key** (draft-ietf-httpapi-idempotency-key-header): send a unique key
(1-255 printable ASCII characters) to make retries safe. Keys are scoped to the
caller's tenant and kept for `TTC_IDEMPOTENCY_TTL_S` (24 hours by default).
- Same key, same body: the same job. The first response is sent again (`202`, the same
  body, whose `status` is the job's status at creation; GET `Location` for the current
  one) with the header `Idempotent-Replayed: true`. Nothing is charged to the limits.
- Same key, different body: `422`, `field` = `Idempotency-Key`.
- Same key while the first request is still creating its job: `409`; retry shortly.
- A request that fails (invalid body, a limit) frees its key for a retry.

**Limits** per tenant: `TTC_TENANT_RATE_PER_MINUTE` submissions per minute (bursts of ten
seconds' worth) and `TTC_TENANT_MAX_ACTIVE_JOBS` queued, running or paused jobs, both
`429` with `Retry-After` (seconds); a body over `TTC_MAX_BODY_BYTES` is `413`; a prompt
over `TTC_MAX_PROMPT_CHARS`, `n` over `TTC_MAX_N` and `max_depth` over `TTC_MAX_DEPTH`
are `422` naming the field.

An admin key may set `tenant` to submit for another tenant (default `default`).
"""


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    description=SUBMIT_DESCRIPTION,
    responses=problem_responses(409, 429),
    openapi_extra=SUBMIT_EXAMPLES,
)
@tracing.traced("ttc.submit")
def submit_job(
    spec: JobCreate,
    response: Response,
    db: DatabaseDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    principal: PrincipalDep,
    rate: SubmissionRateDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="makes retries safe: same key and body, same job",
        ),
    ] = None,
) -> JobAccepted:
    """Submit a search job; poll the returned Location for its result."""
    done = submit(
        db=db,
        settings=settings,
        rate=rate,
        principal=principal,
        spec=spec,
        idempotency_key=idempotency_key,
    )
    if done.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        # Enqueue only after commit: a worker must find the row it is told about.
        dispatcher.submit(done.accepted.id)
    response.headers["Location"] = done.accepted.location
    return done.accepted


@router.get("", response_model=JobsPublic)
def read_jobs(
    session: SessionDep,
    tenant: TenantDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    status: JobStatus | None = None,
    strategy: Annotated[str | None, Query(max_length=64, description="only this strategy")] = None,
    batch_id: Annotated[
        str | None, Query(max_length=36, pattern=NO_NUL, description="only this problem batch")
    ] = None,
) -> JobsPublic:
    """List jobs, newest first (cursor-paged), optionally by status, strategy and batch."""
    return list_jobs(
        session,
        tenant=tenant,
        cursor=cursor,
        limit=limit,
        status=status,
        strategy=strategy,
        batch_id=batch_id,
    )


@router.get("/{job_id}", response_model=JobPublic)
def read_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobPublic:
    """A job's status, progress, usage and result."""
    return job_public(get_job(session, job_id, tenant=tenant))


@router.get("/{job_id}/selection", response_model=SelectionExplained)
def read_selection(job_id: str, session: SessionDep, tenant: TenantDep) -> SelectionExplained:
    """Why the answer won: the strategy's rule, the chosen node and the runner-up."""
    return explain_selection(session, get_job(session, job_id, tenant=tenant))


@router.post("/{job_id}/cancel", response_model=JobPublic)
def cancel(job_id: str, db: DatabaseDep, tenant: TenantDep) -> JobPublic:
    """Cancel a job; no new expansions start. Idempotent."""
    with db.transaction() as session:
        job = cancel_job(session, job_id, tenant=tenant)
        return job_public(job)


@router.post("/{job_id}/pause", response_model=JobPublic, responses=STATE_PROBLEM_RESPONSES)
def pause(job_id: str, db: DatabaseDep, tenant: TenantDep) -> JobPublic:
    """Pause a job: in-flight expansions finish, nothing new starts. Idempotent."""
    with db.transaction() as session:
        return job_public(pause_job(session, job_id, tenant=tenant))


@router.post("/{job_id}/resume", response_model=JobPublic, responses=STATE_PROBLEM_RESPONSES)
def resume(job_id: str, db: DatabaseDep, tenant: TenantDep, dispatcher: DispatcherDep) -> JobPublic:
    """Resume a paused job from its persisted tree. Idempotent."""
    with db.transaction() as session:
        job, followups = resume_job(session, job_id, tenant=tenant)
        public = job_public(job)
    dispatcher.dispatch(followups)
    return public
