"""Fair dispatch between tenants: a per-tenant cap on running work, across every worker.

Celery's queues are FIFO: a tenant that submits fifty big jobs fills them, and another
tenant's small job waits behind all of it. Here a task that is about to run a tenant's
work (a driver step, which runs its first batch inline, or an expansion batch) first
takes one of the tenant's ``tenant_max_running_tasks`` slots (and, for a job with a code
verifier, one of its ``tenant_max_code_tasks`` slots too). The slots live in Redis, like
the endpoint limiter's (:mod:`ttc_core.inference.limiter`): a sorted set per tenant with
one member per running task, scored by its lease expiry, renewed while the task runs, so
a killed worker's slots come back by themselves after ``batch_lease_s``.

A task that finds its tenant at the cap does not wait in the worker: it puts its message
back at the end of the queue (after ``fair_defer_s``) and returns, so the worker process
takes the next message, which may be another tenant's. One tenant can then hold at most
its cap of worker processes, and the rest serve everyone else.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ttc_core.engine.runtime import EngineContext
from ttc_core.store.models import ExpansionBatch, Job

__all__ = ["Owner", "TenantSlots", "owner_of", "tenant_turn"]

log = logging.getLogger(__name__)

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 60)
  return 1
end
return 0
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])) + 60)
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose work a task is about to run."""

    tenant: str
    #: The job verifies with code (counted against the tenant's code cap too).
    code: bool


def owner_of(ctx: EngineContext, kind: str, ident: str) -> Owner | None:
    """The owner of a driver step (``kind="advance"``, a job id) or a batch (a batch id)."""
    query = select(Job.tenant, Job.verifier)
    if kind == "advance":
        query = query.where(Job.id == ident)
    else:
        query = query.join(ExpansionBatch, ExpansionBatch.job_id == Job.id).where(
            ExpansionBatch.id == ident
        )
    with ctx.db.session() as session:
        row = session.execute(query).first()
    if row is None:
        return None
    verifier = row.verifier if isinstance(row.verifier, dict) else {}
    return Owner(tenant=row.tenant, code=verifier.get("kind") == "code")


class TenantSlots:
    """Non-blocking per-key slots with leases, shared through one Redis."""

    def __init__(self, url: str, prefix: str = "ttc:fair") -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(url)
        self._prefix = prefix
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)

    def key(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    def try_acquire(self, name: str, limit: int, lease_s: float) -> str | None:
        token = uuid.uuid4().hex
        if self._acquire(keys=[self.key(name)], args=[limit, lease_s, token]):
            return token
        return None

    def renew(self, name: str, token: str, lease_s: float) -> None:
        self._renew(keys=[self.key(name)], args=[lease_s, token])

    def release(self, name: str, token: str) -> None:
        self._redis.zrem(self.key(name), token)

    def running(self, name: str) -> int:
        return int(self._redis.zcount(self.key(name), time.time(), "+inf"))


@contextlib.contextmanager
def _renewing(slots: TenantSlots, held: list[tuple[str, str]], lease_s: float) -> Iterator[None]:
    """Renew ``held`` slots every third of the lease until the block ends."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(lease_s / 3):
            for name, token in held:
                try:
                    slots.renew(name, token, lease_s)
                except Exception:  # the lease runs out by itself; the next renewal retries
                    log.warning("could not renew fair-dispatch slot %s", name, exc_info=True)

    thread = threading.Thread(target=renew, name="ttc-fair-renew", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        for name, token in held:
            with contextlib.suppress(Exception):
                slots.release(name, token)


@contextlib.contextmanager
def tenant_turn(
    slots: TenantSlots, owner: Owner | None, *, max_running: int, max_code: int, lease_s: float
) -> Iterator[bool]:
    """True (and the slots held for the block) when the owner may run now; False when it
    is at a cap and the task should put its message back."""
    if owner is None:  # the job is gone: let the task find that out itself
        yield True
        return
    wanted = [(f"run:{owner.tenant}", max_running)]
    if owner.code:
        wanted.append((f"code:{owner.tenant}", max_code))
    held: list[tuple[str, str]] = []
    for name, limit in wanted:
        token = slots.try_acquire(name, limit, lease_s)
        if token is None:
            for taken, held_token in held:
                slots.release(taken, held_token)
            yield False
            return
        held.append((name, token))
    with _renewing(slots, held, lease_s):
        yield True
