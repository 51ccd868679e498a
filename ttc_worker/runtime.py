"""Per-process engine state for a Celery worker: one event loop (in a thread of its own),
one pooled HTTP client, one Redis limiter and one database pool, created lazily in the
process that uses them (never before fork).

Every task of the process runs its coroutines on that one loop, so a worker whose pool
runs tasks concurrently (``--pool threads``) holds many batches in flight in one
process, sharing one HTTP pool and at most ``pool_size + max_overflow`` Postgres
connections (``ttc_core.store.db``) whatever the number of jobs. With ``--pool prefork`` each
child process has its loop and runs one task at a time, as before.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.inference import RedisLimiter
from ttc_core.settings import get_settings
from ttc_core.store.db import Database
from ttc_core.verifiers import warm_up

T = TypeVar("T")

_state: dict[str, Any] = {}
_lock = threading.Lock()


def _ensure() -> tuple[asyncio.AbstractEventLoop, EngineContext]:
    if _state.get("pid") != os.getpid():
        with _lock:
            if _state.get("pid") != os.getpid():
                _start()
    return _state["loop"], _state["ctx"]


def _start() -> None:
    settings = get_settings()
    loop = asyncio.new_event_loop()
    # Database work of the loop's batches runs in these threads (``asyncio.to_thread``):
    # as many as the process's connection pool can serve (``ttc_core.store.db``).
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="ttc-db")
    )
    thread = threading.Thread(target=loop.run_forever, name="ttc-engine-loop", daemon=True)
    thread.start()

    async def build() -> EngineContext:
        return EngineContext(
            settings=settings,
            db=Database(settings.database_url),
            http=make_http_client(),
            limiter=RedisLimiter(settings.limiter_redis_url),
        )

    ctx = asyncio.run_coroutine_threadsafe(build(), loop).result()
    # Import math-verify's parser now (about a second), not inside the first job.
    warm_up()
    _state.update(loop=loop, ctx=ctx, thread=thread, pid=os.getpid())


def context() -> EngineContext:
    return _ensure()[1]


def run(coro_factory: Callable[[EngineContext], Coroutine[Any, Any, T]]) -> T:
    """Run ``coro_factory(ctx)`` on this process's loop and wait for it; the calling
    thread's context variables (the task's log ids, trace and telemetry) go with it."""
    loop, ctx = _ensure()
    caller = contextvars.copy_context()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def start() -> None:
        try:
            task = loop.create_task(coro_factory(ctx), context=caller)
        except BaseException as exc:
            done.set_exception(exc)
            return

        def finished(t: asyncio.Task[T]) -> None:
            if t.cancelled():
                done.cancel()
            elif (exc := t.exception()) is not None:
                done.set_exception(exc)
            else:
                done.set_result(t.result())

        task.add_done_callback(finished)

    loop.call_soon_threadsafe(start, context=caller)
    return done.result()
