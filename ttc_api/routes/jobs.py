"""Job routes: submit, read, list, cancel, events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from ttc_api.deps import (
    DEFAULT_TENANT,
    DatabaseDep,
    DispatcherDep,
    SessionDep,
    SettingsDep,
    TenantDep,
)
from ttc_api.problems import PROBLEM_RESPONSES
from ttc_api.schemas import EventsPublic, JobAccepted, JobPublic, JobsPublic
from ttc_api.services import get_job, job_public, list_events, list_jobs
from ttc_core.control import cancel_job, pause_job, resume_job
from ttc_core.models import JobStatus
from ttc_core.submission import JobSpec, create_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
def submit_job(
    spec: JobSpec,
    response: Response,
    db: DatabaseDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    tenant: TenantDep,
) -> JobAccepted:
    """Submit a search job; poll the returned Location for its result."""
    with db.transaction() as session:
        job = create_job(session, spec, settings, tenant=tenant or DEFAULT_TENANT)
    # Enqueue only after commit: a worker must find the row it is told about.
    dispatcher.submit(job.id)
    location = f"/v1/jobs/{job.id}"
    response.headers["Location"] = location
    return JobAccepted(id=job.id, status=job.status, location=location)


@router.get("", response_model=JobsPublic)
def read_jobs(
    session: SessionDep,
    tenant: TenantDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    status: JobStatus | None = None,
) -> JobsPublic:
    """List jobs, newest first (cursor-paged)."""
    return list_jobs(session, tenant=tenant, cursor=cursor, limit=limit, status=status)


@router.get("/{job_id}", response_model=JobPublic)
def read_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobPublic:
    """A job's status, progress, usage and result."""
    return job_public(get_job(session, job_id, tenant=tenant))


@router.post("/{job_id}/cancel", response_model=JobPublic)
def cancel(job_id: str, db: DatabaseDep, tenant: TenantDep) -> JobPublic:
    """Cancel a job; no new expansions start. Idempotent."""
    with db.transaction() as session:
        job = cancel_job(session, job_id, tenant=tenant)
        return job_public(job)


@router.post("/{job_id}/pause", response_model=JobPublic)
def pause(job_id: str, db: DatabaseDep, tenant: TenantDep) -> JobPublic:
    """Pause a job: in-flight expansions finish, nothing new starts. Idempotent."""
    with db.transaction() as session:
        return job_public(pause_job(session, job_id, tenant=tenant))


@router.post("/{job_id}/resume", response_model=JobPublic)
def resume(job_id: str, db: DatabaseDep, tenant: TenantDep, dispatcher: DispatcherDep) -> JobPublic:
    """Resume a paused job from its persisted tree. Idempotent."""
    with db.transaction() as session:
        job, followups = resume_job(session, job_id, tenant=tenant)
        public = job_public(job)
    dispatcher.dispatch(followups)
    return public


@router.get("/{job_id}/events", response_model=EventsPublic)
def read_events(
    job_id: str,
    session: SessionDep,
    tenant: TenantDep,
    after: Annotated[int, Query(ge=0, description="return events with id > after")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> EventsPublic:
    """A job's progress events in order (poll with ``after`` = the last id seen)."""
    job = get_job(session, job_id, tenant=tenant)
    return list_events(session, job, after=after, limit=limit)
