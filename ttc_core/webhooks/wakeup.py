"""Waking the sender of a delivery once the transaction that wrote it has committed.

Deliveries are written in the same transaction as the job's status change (so a
committed status always has its delivery), by code that does not know which executor it
runs under. It notes the delivery ids on the session; after commit they are handed to
the process's *waker*: the Celery worker and the API on the distributed stack send a
task to the ``ttc.webhooks`` queue, the embedded executor schedules the attempt on its
loop. A process without a waker (or a wake-up that fails) loses nothing: the delivery
row is durable and the reaper wakes due deliveries whose message never came.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: Called after commit with the ids of the deliveries to attempt now.
Waker = Callable[[Sequence[str]], None]

_KEY = "ttc_webhook_wake"
_HOOKED = "ttc_webhook_hooked"
_waker: Waker | None = None


def set_waker(waker: Waker | None) -> Waker | None:
    """Install this process's waker; returns the one it replaces."""
    global _waker
    previous, _waker = _waker, waker
    return previous


def current_waker() -> Waker | None:
    return _waker


def wake(ids: Sequence[str]) -> None:
    """Hand deliveries to the waker now (the caller has committed them)."""
    waker = _waker
    if not ids:
        return
    if waker is None:
        log.debug("no webhook waker in this process; the reaper will send %s", list(ids))
        return
    try:
        waker(list(ids))
    except Exception:  # the row is durable: the reaper sends it later
        log.warning("could not wake webhook deliveries %s", list(ids), exc_info=True)


def wake_after_commit(session: Session, delivery_id: str) -> None:
    """Wake a delivery once ``session`` commits (dropped if it rolls back)."""
    session.info.setdefault(_KEY, []).append(delivery_id)
    if not session.info.get(_HOOKED):
        session.info[_HOOKED] = True
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)


def _after_commit(session: Session) -> None:
    wake(session.info.pop(_KEY, []))


def _after_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)
