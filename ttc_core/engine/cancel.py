"""Cancel reaches running work: a batch's requests and verifications stop when its job
is cancelled.

The cancel route only sets a flag in Postgres (Celery's revoke list cannot reach a task
that is already running). While a batch generates and scores, :func:`stop_when_cancelled`
polls its job's status (one indexed primary-key read every ``interval_s``) and, once the
job is ``cancelled``, cancels the batch's asyncio task: in-flight HTTP requests are
dropped, and sandboxed code runs are killed with their whole process tree (the sandbox
kills on cancellation, see ``ttc_core.sandbox.process``). The block then ends normally
with ``watch.fired`` set, so the batch completes as a batch of a cancelled job does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select

from ttc_core.engine.runtime import EngineContext
from ttc_core.store.models import Job, JobStatus

__all__ = ["CANCEL_POLL_S", "CancelWatch", "stop_when_cancelled"]

log = logging.getLogger(__name__)

#: How often a running batch reads its job's status.
CANCEL_POLL_S = 0.5


@dataclass(slots=True)
class CancelWatch:
    #: The job was cancelled and the block's work was stopped.
    fired: bool = False


def _status(ctx: EngineContext, job_id: str) -> str | None:
    with ctx.db.engine.connect() as conn:
        return conn.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()


async def _watch(
    ctx: EngineContext, job_id: str, task: asyncio.Task[object], watch: CancelWatch, every: float
) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            status = await asyncio.to_thread(_status, ctx, job_id)
        except Exception:  # a database hiccup: the next poll tries again
            log.debug("job %s: cancel watch could not read the status", job_id, exc_info=True)
            continue
        if status == JobStatus.cancelled:
            log.info("job %s: cancelled; stopping its running batch", job_id)
            watch.fired = True
            task.cancel()
            return


@contextlib.asynccontextmanager
async def stop_when_cancelled(
    ctx: EngineContext, job_id: str, *, interval_s: float = CANCEL_POLL_S
) -> AsyncIterator[CancelWatch]:
    """Run the block; stop it (and swallow that cancellation) once the job is cancelled."""
    task = asyncio.current_task()
    assert task is not None
    watch = CancelWatch()
    watcher = asyncio.ensure_future(_watch(ctx, job_id, task, watch, interval_s))
    try:
        yield watch
    except asyncio.CancelledError:
        if not watch.fired:
            raise  # cancelled from outside: not ours to swallow
        task.uncancel()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
