"""Thin Celery tasks: ids in, follow-ups enqueued; the logic lives in ttc_core.steps."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from ttc_core.errors import InputError
from ttc_core.models import ExpansionBatch
from ttc_core.reaper import find_stalled
from ttc_core.scoring import ScorerError
from ttc_core.steps import advance, expand, fail_job, job_of_batch, run_driver_steps
from ttc_core.verifiers import VerifierError
from ttc_worker import runtime
from ttc_worker.app import app
from ttc_worker.dispatch import enqueue
from ttc_worker.queues import ADVANCE_TASK, EXPAND_TASK, REAP_TASK

log = logging.getLogger(__name__)

#: Errors that retrying the whole batch cannot fix.
PERMANENT_ERRORS = (ScorerError, VerifierError, InputError)


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


@app.task(name=REAP_TASK, ignore_result=True)
def reap_task() -> None:
    ctx = runtime.context()
    enqueue(find_stalled(ctx.db, stall_s=ctx.settings.stall_s))


@app.task(name=EXPAND_TASK, bind=True, max_retries=10)
def expand_task(self: Any, batch_id: str) -> None:
    try:
        followups = runtime.run(lambda ctx: expand(ctx, batch_id))
    except PERMANENT_ERRORS as exc:
        # A scorer or verifier that answers garbage after its own retries will do so again.
        ctx = runtime.context()
        job_id = job_of_batch(ctx, batch_id)
        log.error("batch %s: %r", batch_id, exc)
        if job_id is not None:
            fail_job(ctx, job_id, f"{type(exc).__name__}: {exc}")
        return
    except Exception as exc:
        ctx = runtime.context()
        with ctx.db.session() as session:
            attempts = session.scalar(
                select(ExpansionBatch.attempts).where(ExpansionBatch.id == batch_id)
            )
        if (attempts or 0) >= ctx.settings.max_batch_attempts:
            job_id = job_of_batch(ctx, batch_id)
            log.error("batch %s failed %s times: %r", batch_id, attempts, exc)
            if job_id is not None:
                fail_job(ctx, job_id, f"expansion failed after {attempts} attempts: {exc!r}")
            return
        raise self.retry(exc=exc, countdown=1 + 2 * (attempts or 0)) from exc
    try:
        batches = run_driver_steps(runtime.context(), followups)
    except Exception:
        # Leave the driver step to its own task (with its retries and failure handling).
        log.exception("batch %s: inline driver step failed; enqueueing it", batch_id)
        batches = followups
    enqueue(batches)
