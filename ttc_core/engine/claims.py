"""Fenced claims on expansion batches, and the one lock order every writer follows.

A worker that takes a batch writes a fresh ``claim_token`` and an expiry
(``claimed_until``) on its row. Every later write of that worker for the batch (the
children it saves, their scores, the completion) runs in a transaction that first does
``UPDATE expansion_batches ... WHERE id = :id AND claim_token = :token AND status =
'pending'``; a rowcount of 0 means another worker has taken the batch over (or it is
done), and the write is abandoned with :class:`ClaimLost`. That UPDATE also takes the
batch's row lock, so a takeover (``SELECT ... FOR UPDATE`` on the same row) is ordered
strictly before or after each write: the new holder sees every row its predecessor saved
and regenerates only what is missing, and the predecessor writes nothing after it.

A heartbeat renews the expiry while requests are in flight (:func:`heartbeat`). A failed
renewal (a dropped connection, a database blip) is retried on a fresh connection; the
heartbeat gives up, raising :class:`ClaimLost`, when the row is no longer this worker's
or when the expiry it last wrote has passed (another worker may have taken over by now).
The batch's work runs under it (``ttc_core.engine.batches``): when the heartbeat ends, the
work's requests are cancelled and nothing more is written.

Lock order
----------
Every transaction that locks more than one kind of row takes them in this order:

1. the **job** row (``SELECT ... FOR UPDATE`` or an ``UPDATE`` of ``jobs``); several
   jobs in id order;
2. **expansion batch** rows, in id order;
3. **node** rows, in id order.

Paths that follow it: the driver step (``steps.drive``: job, then the batches it
creates, then node meta), batch completion (``batches._complete``: job, then the fenced
batch update, then nodes), operator actions (``control``: job, then nodes), the reaper
(jobs, then batches), claims, heartbeats and fenced writes (one batch row, then nodes,
never a job). Events (``store.append_event``) update the job row at commit, so a
transaction that appends events locks its job first. Two transactions that each follow
the order can wait for each other but never deadlock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Update, update
from sqlalchemy.exc import DBAPIError

from ttc_core.store.db import Database
from ttc_core.store.models import BatchStatus, ExpansionBatch, utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How many times a write is retried after its connection died (a fresh one each time).
DISCONNECT_RETRIES = 3


class ClaimLost(Exception):
    """This worker no longer holds the batch: another took it over, it was completed, or
    the lease ran out before the heartbeat could renew it. The work stops, unwritten."""

    def __init__(self, batch_id: str, why: str) -> None:
        super().__init__(f"batch {batch_id}: claim lost ({why})")
        self.batch_id = batch_id


def _fence_statement(batch_id: str, token: str) -> Update:
    return update(ExpansionBatch.__table__).where(  # type: ignore[arg-type]
        ExpansionBatch.id == batch_id,
        ExpansionBatch.claim_token == token,
        ExpansionBatch.status == BatchStatus.pending,
    )


def fence(conn: Connection, batch_id: str, token: str) -> None:
    """Lock the batch row inside ``conn``'s transaction, or raise :class:`ClaimLost` when
    the row is no longer held with ``token``. Call it first in every write of a claim."""
    statement = _fence_statement(batch_id, token).values(claim_token=token)
    if conn.execute(statement).rowcount != 1:
        raise ClaimLost(batch_id, "taken over or finished")


def renew(db: Database, batch_id: str, token: str, lease_s: float) -> bool:
    """Push the claim's expiry ``lease_s`` ahead; False when the row is no longer ours."""
    statement = _fence_statement(batch_id, token).values(
        claimed_until=utcnow() + dt.timedelta(seconds=lease_s)
    )
    with db.engine.begin() as conn:
        return conn.execute(statement).rowcount == 1


def retry_on_disconnect(write: Callable[[], T]) -> T:
    """Run an idempotent write, again on a fresh connection if its connection died (a
    restarted or terminated backend: SQLAlchemy then invalidates the pool)."""
    for attempt in range(DISCONNECT_RETRIES + 1):
        try:
            return write()
        except DBAPIError as exc:
            if not exc.connection_invalidated or attempt == DISCONNECT_RETRIES:
                raise
            log.warning("database connection lost during a write; retrying", exc_info=True)
    raise AssertionError("unreachable")


async def heartbeat(db: Database, batch_id: str, token: str, lease_s: float) -> None:
    """Renew a claim every third of its lease until cancelled; raises :class:`ClaimLost`
    when the row is no longer ours, or when renewals kept failing until the expiry last
    written had passed. Renewals run in a worker thread (never block the event loop)."""
    held_until = time.monotonic() + lease_s
    wait = lease_s / 3
    while True:
        await asyncio.sleep(min(wait, max(0.0, held_until - time.monotonic())))
        sent = time.monotonic()
        try:
            renewed = await asyncio.to_thread(renew, db, batch_id, token, lease_s)
        except Exception:
            if time.monotonic() >= held_until:
                raise ClaimLost(batch_id, "lease ran out while renewals failed") from None
            log.warning("batch %s: heartbeat failed; retrying", batch_id, exc_info=True)
            wait = lease_s / 12
            continue
        if not renewed:
            raise ClaimLost(batch_id, "taken over or finished")
        held_until = sent + lease_s  # the expiry written is at least this late
        wait = lease_s / 3


async def supervised(work: asyncio.Future[T], beat: asyncio.Future[None]) -> T:
    """Await ``work`` while ``beat`` (a :func:`heartbeat`) runs: when the heartbeat ends
    first (its claim is lost), the work is cancelled and :class:`ClaimLost` raised."""
    both: list[asyncio.Future[Any]] = [work, beat]
    try:
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        work.cancel()
        beat.cancel()
        raise
    if not work.done():
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        beat.result()  # raises ClaimLost (or what broke the heartbeat)
        raise ClaimLost("?", "heartbeat ended")  # pragma: no cover - beat never returns
    beat.cancel()
    await asyncio.gather(beat, return_exceptions=True)
    return work.result()
