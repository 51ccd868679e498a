"""Endpoint concurrency and rate limits.

Rates (requests and tokens per minute) are token buckets that refill continuously and
hold ten seconds' worth, so a burst cannot spend a whole minute's budget at once. A
request reserves its worst case (``n * max_tokens`` plus the prompt's estimate) before
it is sent.

``LocalLimiter`` caps in-flight requests inside one process (embedded mode).
``RedisLimiter`` caps them across every worker process: a Redis sorted set holds one
member per in-flight request, scored by its lease expiry so that a killed worker's slots
come back by themselves. Waiters are woken through pub/sub on release, with a short poll
as the fallback, so a freed slot is reused within milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from ttc_core.observability import metrics

log = logging.getLogger(__name__)


BURST_S = 10.0


class ConcurrencyLimiter(Protocol):
    def slot(
        self, key: str, limit: int, lease_s: float
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one of ``limit`` slots of ``key`` for the duration of the block."""

    async def take(self, key: str, amount: float, per_minute: float) -> None:
        """Wait until ``amount`` units of the ``per_minute`` budget ``key`` are free."""


def bucket_shape(per_minute: float) -> tuple[float, float]:
    """(capacity, refill per second) of a per-minute budget."""
    rate = per_minute / 60.0
    return max(1.0, rate * BURST_S), rate


class TokenBuckets:
    """Per-key token buckets in this process (thread-safe): the in-process twin of
    :data:`TAKE_SCRIPT`, used by endpoint limits and per-tenant submission rates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._levels: dict[str, tuple[float, float]] = {}  # key -> (level, last refill)

    def try_take(self, key: str, amount: float, per_minute: float) -> float:
        """Take ``amount`` now and return 0.0, or return the seconds until it is there."""
        capacity, rate = bucket_shape(per_minute)
        amount = min(amount, capacity)  # a request larger than the burst waits for a full one
        with self._lock:
            now = time.monotonic()
            level, last = self._levels.get(key, (capacity, now))
            level = min(capacity, level + (now - last) * rate)
            if level >= amount:
                self._levels[key] = (level - amount, now)
                return 0.0
            self._levels[key] = (level, now)
            return (amount - level) / rate


class LocalLimiter:
    def __init__(self) -> None:
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._buckets = TokenBuckets()

    async def take(self, key: str, amount: float, per_minute: float) -> None:
        while (wait := self._buckets.try_take(key, amount, per_minute)) > 0:
            await asyncio.sleep(wait)

    @contextlib.asynccontextmanager
    async def slot(self, key: str, limit: int, lease_s: float) -> AsyncIterator[None]:
        sem = self._sems.get(key)
        if sem is None:
            sem = self._sems[key] = asyncio.Semaphore(limit)
        async with sem:
            yield


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


#: Release a slot; wake the other processes' waiters only when the set was full (nobody
#: waits for a slot of a set below its limit; a waiter also retries every 50 ms).
_RELEASE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZCARD', KEYS[1]) + removed >= tonumber(ARGV[2]) then
  redis.call('PUBLISH', KEYS[2], '1')
end
return removed
"""


TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local capacity, rate, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'level', 'ts')
local level = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
level = math.min(capacity, level + (now - ts) * rate)
local wait = 0
if level >= amount then level = level - amount else wait = (amount - level) / rate end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(wait)
"""


class RedisLimiter:
    """A counting semaphore shared by all processes that use the same Redis."""

    def __init__(self, url: str, prefix: str = "ttc:sem") -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.Redis.from_url(url)
        self._prefix = prefix
        self._local = LocalLimiter()
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._take = self._redis.register_script(TAKE_SCRIPT)
        self._release = self._redis.register_script(_RELEASE)
        self._wakeups: dict[str, asyncio.Event] = {}
        self._listener: asyncio.Task[None] | None = None

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.psubscribe(f"{self._prefix}:wake:*")
        try:
            async for message in pubsub.listen():
                if message.get("type") != "pmessage":
                    continue
                channel = message["channel"].decode()
                event = self._wakeups.get(channel.removeprefix(f"{self._prefix}:wake:"))
                if event is not None:
                    event.set()
        finally:
            await pubsub.aclose()

    @contextlib.asynccontextmanager
    async def slot(self, key: str, limit: int, lease_s: float) -> AsyncIterator[None]:
        # The local semaphore keeps this process from queueing more waiters than it could use.
        async with self._local.slot(key, limit, lease_s):
            if self._listener is None or self._listener.done():
                self._listener = asyncio.get_running_loop().create_task(self._listen())
            token = uuid.uuid4().hex
            event = self._wakeups.setdefault(key, asyncio.Event())
            began = time.monotonic()
            while not await self._acquire(keys=[self._key(key)], args=[limit, lease_s, token]):
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=0.05)
            metrics.slot_waited(key, began)
            try:
                yield
            finally:
                # One round trip: the slot back, and a wake-up only if someone may wait.
                await self._release(
                    keys=[self._key(key), f"{self._prefix}:wake:{key}"], args=[token, limit]
                )

    async def take(self, key: str, amount: float, per_minute: float) -> None:
        capacity, rate = bucket_shape(per_minute)
        amount = min(amount, capacity)
        while True:
            wait = float(
                await self._take(keys=[f"{self._prefix}:rate:{key}"], args=[capacity, rate, amount])
            )
            if wait <= 0:
                return
            metrics.rate_wait(key)
            await asyncio.sleep(wait)

    async def get_note(self, key: str) -> str | None:
        """A small fact about an endpoint one worker learnt for the others (e.g. the
        largest ``n`` its server accepts), or None."""
        value = await self._redis.get(self._key(f"note:{key}"))
        return value.decode() if isinstance(value, bytes) else value

    async def set_note(self, key: str, value: str, ttl_s: float) -> None:
        await self._redis.set(self._key(f"note:{key}"), value, ex=max(1, int(ttl_s)))

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self._redis.aclose()
