"""What a finished job answers: the ranked answers, or the OpenAI error of a job that
failed or was cancelled."""

from __future__ import annotations

import anyio

from ttc_api.openai_compat.envelope import JOB_HEADER
from ttc_api.openai_compat.errors import OpenAIError
from ttc_api.openai_compat.ranking import RankedAnswer, ranked_answers
from ttc_core.store.db import Database
from ttc_core.store.models import Job, JobStatus


def job_error(job: Job) -> OpenAIError:
    """The error of a job that has no answer. Never retried by the SDK: a retry would run
    the same search again."""
    headers = {JOB_HEADER: job.id}
    if job.status == JobStatus.cancelled:
        return OpenAIError(
            409, f"job {job.id} was cancelled", code="job_cancelled", retry=False, headers=headers
        )
    return OpenAIError(
        500,
        f"job {job.id} failed: {job.error or 'no answer'}",
        code="job_failed",
        retry=False,
        headers=headers,
    )


def _load(db: Database, job_id: str, count: int) -> tuple[Job, list[RankedAnswer]]:
    with db.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise OpenAIError(404, f"job {job_id} is gone", code="not_found", retry=False)
        answers = ranked_answers(session, job, count) if job.status == JobStatus.succeeded else []
        session.expunge(job)
        return job, answers


async def outcome(db: Database, job_id: str, count: int) -> tuple[Job, list[RankedAnswer]]:
    """The finished job and its answers (none unless it succeeded)."""
    return await anyio.to_thread.run_sync(_load, db, job_id, count)
