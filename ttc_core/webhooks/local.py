"""Webhook sending inside the embedded executor (no Celery): the same
:func:`attempt_delivery`, run in a thread off the executor's loop, with retries as
``call_later`` timers instead of countdown messages.

Timers die with the process; the deliveries do not: at start-up every pending delivery
is looked at again, exactly as the reaper does on the distributed stack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ttc_core.settings import Settings
from ttc_core.store.db import Database
from ttc_core.store.models import DeliveryStatus, WebhookDelivery
from ttc_core.webhooks.delivery import attempt_delivery
from ttc_core.webhooks.ssrf import Resolver

log = logging.getLogger(__name__)


class LocalDeliverer:
    """Attempts deliveries on an asyncio loop (thread-safe :meth:`wake`)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        db: Database,
        settings: Settings,
        resolver: Resolver | None = None,
    ) -> None:
        self._loop = loop
        self._db = db
        self._settings = settings
        self._resolver = resolver
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def wake(self, ids: Sequence[str]) -> None:
        """Attempt these deliveries now (callable from any thread)."""
        if not self._closed:
            self._loop.call_soon_threadsafe(self._start, list(ids))

    def wake_pending(self) -> None:
        """Look at every pending delivery (after a restart their timers are gone)."""
        try:
            with self._db.session() as session:
                ids = list(
                    session.scalars(
                        select(WebhookDelivery.id).where(
                            WebhookDelivery.status == DeliveryStatus.pending
                        )
                    )
                )
        except SQLAlchemyError:  # a database without the webhook tables (not migrated)
            log.warning("cannot look for pending webhook deliveries", exc_info=True)
            return
        self.wake(ids)

    def _start(self, ids: list[str]) -> None:
        for delivery_id in ids:
            if self._closed:
                return
            task = self._loop.create_task(self._attempt(delivery_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _attempt(self, delivery_id: str) -> None:
        try:
            outcome = await asyncio.to_thread(
                attempt_delivery, self._db, self._settings, delivery_id, resolver=self._resolver
            )
        except Exception:
            log.exception("webhook %s: attempt failed; retrying in a minute", delivery_id)
            self._later(60.0, delivery_id)
            return
        delay = outcome.wake_again_in()
        if delay is not None:
            self._later(delay, delivery_id)

    def _later(self, delay: float, delivery_id: str) -> None:
        if self._closed:
            return
        handle = self._loop.call_later(delay, self._fire, delivery_id)
        self._timers.add(handle)

    def _fire(self, delivery_id: str) -> None:
        self._timers = {
            t for t in self._timers if not t.cancelled() and t.when() > self._loop.time()
        }
        self._start([delivery_id])

    async def aclose(self) -> None:
        """Stop timers and wait for attempts in flight (on the loop)."""
        self._closed = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
