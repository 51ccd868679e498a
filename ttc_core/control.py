"""Operator actions on a live job, as flags in the database that the step loop checks."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ttc_core.errors import NotFoundError
from ttc_core.models import TERMINAL_STATUSES, Job, JobStatus, utcnow
from ttc_core.store import append_event, lock_job


def cancel_job(session: Session, job_id: str, *, tenant: str | None = None) -> Job:
    """Cancel a job: no new expansions are planned or started. Idempotent."""
    job = lock_job(session, job_id)
    if job is None or (tenant is not None and job.tenant != tenant):
        raise NotFoundError(f"no job {job_id}")
    if job.status not in TERMINAL_STATUSES:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
        append_event(session, job.id, "status_changed", status=JobStatus.cancelled)
    return job
