"""Thin Celery tasks: ids in, follow-ups enqueued; the logic lives in ttc_core.engine.steps."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ttc_core.engine.batches import BatchError, advance_chain, expand_chain
from ttc_core.engine.reaper import find_stalled
from ttc_core.engine.runtime import EngineContext
from ttc_core.engine.steps import fail_job, job_of_batch
from ttc_core.errors import InputError
from ttc_core.problem_batches.rounds import fail_batch, find_stalled_batches
from ttc_core.problem_batches.steps import advance_unit
from ttc_core.scoring import ScorerError
from ttc_core.store import expansion_cache
from ttc_core.store.models import ExpansionBatch
from ttc_core.verifiers import VerifierError
from ttc_worker import runtime, telemetry
from ttc_worker.app import VISIBILITY_TIMEOUT_S, app
from ttc_worker.dispatch import enqueue
from ttc_worker.fair_dispatch import fair
from ttc_worker.queues import (
    ADVANCE_TASK,
    BATCH_TASK,
    DRIVER_QUEUE,
    EXPAND_QUEUE,
    EXPAND_TASK,
    REAP_TASK,
)
from ttc_worker.webhook_tasks import reap_deliveries

log = logging.getLogger(__name__)

#: Errors that retrying the whole batch cannot fix.
PERMANENT_ERRORS = (ScorerError, VerifierError, InputError)


@app.task(name=ADVANCE_TASK, bind=True, max_retries=5)
@fair("advance", ADVANCE_TASK, DRIVER_QUEUE)
def advance_task(self: Any, job_id: str) -> str | None:
    # The step's first batch is claimed in the driver step's transaction and runs here
    # (no hop to another process, no second transaction); the rest go out.
    try:
        retry = _run_chain(lambda ctx, until: advance_chain(ctx, job_id, until=until, send=enqueue))
    except Exception as exc:  # the driver step itself failed (a batch's failure is a retry)
        if self.request.retries >= self.max_retries:
            fail_job(runtime.context(), job_id, f"driver step failed: {exc!r}")
            return None
        raise self.retry(exc=exc, countdown=2**self.request.retries) from exc
    if retry is not None:
        _send_later(retry)
    return telemetry.chain_summary()  # the task's result: what ran inline (Flower)


@app.task(name=BATCH_TASK, bind=True, max_retries=5)
def batch_task(self: Any, batch_id: str) -> None:
    """The driver step of a problem batch or an eval: plan its next round or wave, start
    its jobs (``ttc_core.problem_batches.steps``)."""
    try:
        followups = advance_unit(runtime.context(), batch_id)
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            fail_batch(runtime.context(), batch_id, f"batch driver step failed: {exc!r}")
            return
        raise self.retry(exc=exc, countdown=2**self.request.retries) from exc
    enqueue(followups)


#: When this process last evicted from the expansion cache (``time.monotonic()``).
_last_eviction = [float("-inf")]


@app.task(name=REAP_TASK, ignore_result=True)
def reap_task() -> None:
    ctx = runtime.context()
    if time.monotonic() - _last_eviction[0] >= ctx.settings.expansion_cache_sweep_s:
        _last_eviction[0] = time.monotonic()
        try:
            expansion_cache.sweep(ctx.db, ctx.settings)
        except Exception:  # eviction waits for the next sweep; reaping must go on
            log.warning("expansion cache eviction failed", exc_info=True)
    lost_after = ctx.settings.batch_message_lost_s or VISIBILITY_TIMEOUT_S
    enqueue(
        find_stalled(
            ctx.db,
            stall_s=ctx.settings.stall_s,
            lost_after_s=lost_after,
            no_message_waiting=no_expand_message_waiting,
        )
    )
    enqueue(find_stalled_batches(ctx.db, stall_s=ctx.settings.stall_s))
    reap_deliveries()


@app.task(name=EXPAND_TASK, bind=True, max_retries=10)
@fair("expand", EXPAND_TASK, EXPAND_QUEUE)
def expand_task(self: Any, batch_id: str) -> str | None:
    """Expand a batch and, while ``inline_continuation_s`` lasts, the next depths' batches
    too (``ttc_core.engine.batches.expand_chain``); other batches go to the queue."""
    retry = _chain(batch_id)
    if retry is None:
        return telemetry.chain_summary()  # the task's result: what ran inline (Flower)
    if retry.batch_id == batch_id:
        raise self.retry(exc=retry.exc, countdown=retry.countdown) from retry.exc
    _send_later(retry)  # a later depth's batch: it gets a task of its own
    return telemetry.chain_summary()


@dataclass(frozen=True)
class _Retry:
    batch_id: str
    exc: BaseException
    countdown: float


def _chain(batch_id: str) -> _Retry | None:
    """Run the chain from ``batch_id`` (see :func:`_run_chain`)."""
    return _run_chain(lambda ctx, until: expand_chain(ctx, batch_id, until=until, send=enqueue))


def _run_chain(start: Callable[[EngineContext, float], Coroutine[Any, Any, None]]) -> _Retry | None:
    """Run a chain of batches on the engine loop until ``inline_continuation_s`` has
    passed; a retry to schedule when a batch failed (errors that retrying cannot fix fail
    the job here instead). Anything else ``start`` raises propagates."""
    until = time.monotonic() + runtime.context().settings.inline_continuation_s
    try:
        runtime.run(lambda ctx: start(ctx, until))
    except BatchError as err:
        return _on_failure(err.batch_id, err.__cause__ or err)
    return None


def no_expand_message_waiting() -> bool:
    """Whether the broker holds no expansion message: none queued and none delivered but
    unacked (a worker's reserved or countdown tasks). Then an unclaimed batch's message
    is provably lost. Redis transport only; other brokers answer False (not known)."""
    try:
        with app.connection_for_read() as conn:
            channel: Any = conn.default_channel
            if not hasattr(channel, "unacked_key") or channel._size(EXPAND_QUEUE):
                return False
            for raw in channel.client.hvals(channel.unacked_key):
                _message, _exchange, routing_key = json.loads(raw)
                if routing_key == EXPAND_QUEUE:
                    return False
            return True
    except Exception:
        log.warning("could not inspect the broker's expansion queue", exc_info=True)
        return False


def _on_failure(batch_id: str, exc: BaseException) -> _Retry | None:
    ctx = runtime.context()
    if isinstance(exc, PERMANENT_ERRORS):
        # A scorer or verifier that answers garbage after its own retries will do so again.
        job_id = job_of_batch(ctx, batch_id)
        log.error("batch %s: %r", batch_id, exc)
        if job_id is not None:
            fail_job(ctx, job_id, f"{type(exc).__name__}: {exc}")
        return None
    with ctx.db.session() as session:
        attempts = session.scalar(
            select(ExpansionBatch.attempts).where(ExpansionBatch.id == batch_id)
        )
    if (attempts or 0) >= ctx.settings.max_batch_attempts:
        job_id = job_of_batch(ctx, batch_id)
        log.error("batch %s failed %s times: %r", batch_id, attempts, exc)
        if job_id is not None:
            fail_job(ctx, job_id, f"expansion failed after {attempts} attempts: {exc!r}")
        return None
    return _Retry(batch_id, exc, 1 + 2 * (attempts or 0))


def _send_later(retry: _Retry) -> None:
    log.warning("batch %s failed (%r); retrying in %ss", retry.batch_id, retry.exc, retry.countdown)
    app.send_task(EXPAND_TASK, args=[retry.batch_id], queue=EXPAND_QUEUE, countdown=retry.countdown)
