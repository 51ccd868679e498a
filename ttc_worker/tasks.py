"""Thin Celery tasks: ids in, follow-ups enqueued; the logic lives in ttc_core.steps."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from ttc_core.models import ExpansionBatch
from ttc_core.steps import advance, expand, fail_job, job_of_batch
from ttc_worker import runtime
from ttc_worker.app import app
from ttc_worker.dispatch import enqueue
from ttc_worker.queues import ADVANCE_TASK, EXPAND_TASK, MAX_BATCH_ATTEMPTS

log = logging.getLogger(__name__)


@app.task(name=ADVANCE_TASK, bind=True, max_retries=5)
def advance_task(self: Any, job_id: str) -> None:
    try:
        followups = advance(runtime.context(), job_id)
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            fail_job(runtime.context(), job_id, f"driver step failed: {exc!r}")
            return
        raise self.retry(exc=exc, countdown=2**self.request.retries) from exc
    enqueue(followups)


@app.task(name=EXPAND_TASK, bind=True, max_retries=MAX_BATCH_ATTEMPTS)
def expand_task(self: Any, batch_id: str) -> None:
    try:
        followups = runtime.run(lambda ctx: expand(ctx, batch_id))
    except Exception as exc:
        ctx = runtime.context()
        with ctx.db.session() as session:
            attempts = session.scalar(
                select(ExpansionBatch.attempts).where(ExpansionBatch.id == batch_id)
            )
        if (attempts or 0) >= MAX_BATCH_ATTEMPTS:
            job_id = job_of_batch(ctx, batch_id)
            log.error("batch %s failed %s times: %r", batch_id, attempts, exc)
            if job_id is not None:
                fail_job(ctx, job_id, f"expansion failed after {attempts} attempts: {exc!r}")
            return
        raise self.retry(exc=exc, countdown=1 + 2 * (attempts or 0)) from exc
    enqueue(followups)
