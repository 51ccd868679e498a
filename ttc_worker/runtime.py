"""Per-process engine state for a Celery worker: one event loop, one pooled HTTP client,
one Redis limiter, created lazily in the child process (never before fork)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from ttc_core.db import Database
from ttc_core.inference import RedisLimiter
from ttc_core.runtime import EngineContext, make_http_client
from ttc_core.settings import get_settings
from ttc_core.verifiers import warm_up

T = TypeVar("T")

_state: dict[str, Any] = {}


def _ensure() -> tuple[asyncio.AbstractEventLoop, EngineContext]:
    if _state.get("pid") != os.getpid():
        settings = get_settings()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        async def build() -> EngineContext:
            return EngineContext(
                settings=settings,
                db=Database(settings.database_url),
                http=make_http_client(),
                limiter=RedisLimiter(settings.limiter_redis_url),
            )

        _state.update(pid=os.getpid(), loop=loop, ctx=loop.run_until_complete(build()))
        # Import math-verify's parser now (about a second), not inside the first job.
        warm_up()
    return _state["loop"], _state["ctx"]


def context() -> EngineContext:
    return _ensure()[1]


def run(coro_factory: Any) -> Any:
    """Run ``coro_factory(ctx)`` on this process's loop."""
    loop, ctx = _ensure()
    coro: Coroutine[Any, Any, Any] = coro_factory(ctx)
    return loop.run_until_complete(coro)
