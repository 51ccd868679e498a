"""The Celery side of fair dispatch: a decorator that gives a task its tenant's turn or
puts its message back (see :mod:`ttc_worker.fairness`).

A message put back goes out at the lowest priority (:data:`DEFERRED_PRIORITY`): the Redis
transport keeps one list per priority step and workers pop the higher ones first, so a
deferred message never again stands in front of fresh work (another tenant's small job).
Only a message that was already deferred once waits ``fair_defer_s`` before going back,
so a tenant alone at its cap does not spin a worker, while the first pass over a backlog
is as quick as a database read.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ttc_worker import runtime
from ttc_worker.app import app
from ttc_worker.fairness import TenantSlots, owner_of, tenant_turn

__all__ = ["fair"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: Priority of put-back messages (the Redis transport's lowest step; 0 is the highest).
DEFERRED_PRIORITY = 9

_slots: dict[int, TenantSlots] = {}


def _process_slots() -> TenantSlots:
    """One Redis client per worker process (made after fork, like the runtime's)."""
    pid = os.getpid()
    if pid not in _slots:
        _slots.clear()
        _slots[pid] = TenantSlots(runtime.context().settings.limiter_redis_url)
    return _slots[pid]


def _priority(task: Any) -> int | None:
    info = getattr(task.request, "delivery_info", None) or {}
    priority = info.get("priority")
    return priority if isinstance(priority, int) else None


def fair(kind: str, task_name: str, queue: str) -> Callable[[F], F]:
    """Run the decorated ``task(self, ident)`` only in its tenant's turn; otherwise send
    the same message to the back of ``queue`` and return (the worker moves on)."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def run(self: Any, ident: str) -> Any:
            ctx = runtime.context()
            settings = ctx.settings
            if settings.tenant_max_running_tasks <= 0:  # fair dispatch off
                return function(self, ident)
            owner = owner_of(ctx, kind, ident)
            with tenant_turn(
                _process_slots(),
                owner,
                max_running=settings.tenant_max_running_tasks,
                max_code=settings.tenant_max_code_tasks,
                lease_s=settings.batch_lease_s,
            ) as turn:
                if turn:
                    return function(self, ident)
            assert owner is not None
            log.debug("%s %s: tenant %s at its cap; back in the queue", kind, ident, owner.tenant)
            if _priority(self) == DEFERRED_PRIORITY:  # back again: don't spin hot
                time.sleep(settings.fair_defer_s)
            app.send_task(task_name, args=[ident], queue=queue, priority=DEFERRED_PRIORITY)
            return None

        return run  # type: ignore[return-value]

    return decorate
