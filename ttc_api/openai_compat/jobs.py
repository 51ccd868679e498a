"""The job behind an OpenAI request: submitted through the same service as
``POST /v1/jobs`` (tenant, idempotency, limits, billing), awaited, and cancelled when its
client goes away.

The app's SQLAlchemy is synchronous, so every database call here runs in a worker
thread; waiting is a poll of the job's status with a short, growing interval (the
event stream polls the same way, ``ttc_api.sse``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
from fastapi import Request
from sqlalchemy import select

from ttc_api.openai_compat.mapping import JobRequest, refused
from ttc_api.submit import submit
from ttc_core.engine.control import cancel_job
from ttc_core.errors import InputError
from ttc_core.service.auth import Principal
from ttc_core.store.db import Database
from ttc_core.store.models import TERMINAL_STATUSES, Job

log = logging.getLogger(__name__)

#: The first and the longest interval between two looks at a job's status.
FIRST_POLL_S = 0.02
MAX_POLL_S = 0.25


async def start_job(request: Request, principal: Principal, job: JobRequest) -> str:
    """Create and dispatch the job; returns its id. An ``Idempotency-Key`` header makes a
    retried request (the SDKs retry on their own) find the job it already made."""
    app = request.app
    try:
        done = await anyio.to_thread.run_sync(
            partial(
                submit,
                db=app.state.db,
                settings=app.state.settings,
                rate=app.state.submission_rate,
                principal=principal,
                spec=job.spec,
                idempotency_key=request.headers.get("idempotency-key"),
            )
        )
    except InputError as exc:
        raise refused(exc, job) from None
    if not done.replayed:
        # Enqueue only after commit: a worker must find the row it is told about.
        app.state.dispatcher.submit(done.accepted.id)
    return done.accepted.id


def job_status(db: Database, job_id: str) -> str | None:
    with db.session() as session:
        return session.scalar(select(Job.status).where(Job.id == job_id))


async def wait_for_job(
    db: Database, job_id: str, *, gone: Callable[[], Awaitable[bool]] | None = None
) -> str | None:
    """Wait until the job is finished; returns its status. ``None`` when ``gone`` said the
    client disconnected first."""
    interval = FIRST_POLL_S
    while True:
        status = await anyio.to_thread.run_sync(job_status, db, job_id)
        if status is None or status in TERMINAL_STATUSES:
            return status
        if gone is not None and await gone():
            return None
        await anyio.sleep(interval)
        interval = min(MAX_POLL_S, interval * 1.5)


def cancel(db: Database, job_id: str, tenant: str | None) -> None:
    with db.transaction() as session:
        cancel_job(session, job_id, tenant=tenant)


async def cancel_abandoned(db: Database, job_id: str, tenant: str | None) -> None:
    """Cancel the job of a client that went away (shielded: this runs while the request's
    task is being cancelled)."""
    with anyio.CancelScope(shield=True):
        try:
            await anyio.to_thread.run_sync(cancel, db, job_id, tenant)
            log.info("job %s: cancelled, its client disconnected", job_id)
        except Exception:
            log.warning("job %s: could not cancel after disconnect", job_id, exc_info=True)
