"""Group commit: concurrent writers of one batch share transactions.

A batch's requests finish close together (a server that batches ``n`` answers them
within milliseconds of each other), and each used to write its samples in a
transaction of its own: a fence, an insert and a commit, several round trips, per
request. :class:`GroupWriter` runs one write at a time; whatever arrives while a write
is in flight goes into the next one, whole. The first caller waits no longer than
before (its write starts at once), later ones wait at most one write, and a busy batch
writes in a few large transactions instead of many small ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupWriter(Generic[T]):
    """``await writer.add(items)`` returns once a call of ``write`` (run in a worker
    thread) that included ``items`` has returned, or raises what that call raised."""

    def __init__(self, write: Callable[[list[T]], None]) -> None:
        self._write = write
        self._pending: list[T] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._draining: asyncio.Task[None] | None = None

    async def add(self, items: list[T]) -> None:
        if not items:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.extend(items)
        self._waiters.append(done)
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain())
        await done

    async def _drain(self) -> None:
        try:
            while self._pending:
                items, waiters = self._pending, self._waiters
                self._pending, self._waiters = [], []
                try:
                    await asyncio.to_thread(self._write, items)
                except BaseException as exc:  # every caller of this write sees its error
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
        finally:
            self._draining = None
