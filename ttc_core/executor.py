"""The local in-process executor: the same step loop as the Celery service, on one
asyncio loop (embedded mode, ``ttc demo``, engine tests).

Driver steps run inline; expansion batches run as concurrent tasks, each with its own
requests in flight, exactly as separate Celery tasks would.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future

from ttc_core.engine.batches import expand
from ttc_core.engine.runtime import EngineContext
from ttc_core.engine.steps import FollowUp, advance, fail_job, job_of_batch
from ttc_core.problem_batches.rounds import fail_batch
from ttc_core.problem_batches.steps import advance_unit
from ttc_core.store import expansion_cache
from ttc_core.webhooks.local import LocalDeliverer
from ttc_core.webhooks.wakeup import current_waker, set_waker

log = logging.getLogger(__name__)


async def run_followups(ctx: EngineContext, initial: Iterable[FollowUp]) -> None:
    """Run follow-ups until none is left (every job they touch has finished or paused)."""
    in_flight: dict[asyncio.Task[list[FollowUp]], str] = {}

    def dispatch(followups: Iterable[FollowUp]) -> None:
        for fu in followups:
            if fu.kind == "advance":
                try:
                    dispatch(advance(ctx, fu.id))
                except Exception as exc:  # the job fails and says why; others go on
                    log.exception("job %s: driver step failed", fu.id)
                    fail_job(ctx, fu.id, f"driver step failed: {exc!r}")
            elif fu.kind == "batch":
                try:
                    dispatch(advance_unit(ctx, fu.id))
                except Exception as exc:
                    log.exception("problem batch %s: driver step failed", fu.id)
                    fail_batch(ctx, fu.id, f"batch driver step failed: {exc!r}")
            else:
                in_flight[asyncio.ensure_future(expand(ctx, fu.id))] = fu.id

    dispatch(initial)
    while in_flight:
        done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            batch_id = in_flight.pop(task)
            try:
                dispatch(task.result())
            except Exception as exc:
                log.exception("batch %s: expansion failed", batch_id)
                job_id = job_of_batch(ctx, batch_id)
                if job_id is not None:
                    fail_job(ctx, job_id, f"expansion failed: {exc!r}")


async def run_job(ctx: EngineContext, job_id: str) -> None:
    await run_followups(ctx, [FollowUp("advance", job_id)])


class BackgroundExecutor:
    """Runs jobs on a private event loop in a daemon thread (embedded API server)."""

    def __init__(self, make_context: Callable[[], EngineContext]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="ttc-exec")
        self._thread.start()
        self._ctx = asyncio.run_coroutine_threadsafe(self._make(make_context), self._loop).result()
        try:  # the service's reaper evicts every minute; an embedded server at start
            expansion_cache.sweep(self._ctx.db, self._ctx.settings)
        except Exception:
            log.warning("expansion cache eviction failed", exc_info=True)
        # Webhook deliveries committed in this process are attempted on this loop.
        self._webhooks = LocalDeliverer(self._loop, self._ctx.db, self._ctx.settings)
        self._previous_waker = set_waker(self._webhooks.wake)
        self._webhooks.wake_pending()

    @staticmethod
    async def _make(make_context: Callable[[], EngineContext]) -> EngineContext:
        return make_context()

    def submit(self, job_id: str) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(run_job(self._ctx, job_id), self._loop)

    def dispatch(self, followups: Iterable[FollowUp]) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(
            run_followups(self._ctx, list(followups)), self._loop
        )

    def close(self) -> None:
        if current_waker() == self._webhooks.wake:
            set_waker(self._previous_waker)
        asyncio.run_coroutine_threadsafe(self._webhooks.aclose(), self._loop).result(timeout=60)
        asyncio.run_coroutine_threadsafe(self._ctx.aclose(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
