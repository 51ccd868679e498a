"""Enqueue follow-ups (after commit: callers hold no open transaction)."""

from __future__ import annotations

from collections.abc import Iterable

from ttc_core.engine.steps import FollowUp
from ttc_worker.app import app
from ttc_worker.queues import ADVANCE_TASK, BATCH_TASK, DRIVER_QUEUE, EXPAND_QUEUE, EXPAND_TASK

_ROUTES = {
    "advance": (ADVANCE_TASK, DRIVER_QUEUE),
    "expand": (EXPAND_TASK, EXPAND_QUEUE),
    "batch": (BATCH_TASK, DRIVER_QUEUE),
}


def enqueue(followups: Iterable[FollowUp]) -> None:
    for fu in followups:
        name, queue = _ROUTES[fu.kind]
        app.send_task(name, args=[fu.id], queue=queue)


class CeleryDispatcher:
    """What the API uses to start a job on the distributed stack."""

    def submit(self, job_id: str) -> None:
        enqueue([FollowUp("advance", job_id)])

    def dispatch(self, followups: Iterable[FollowUp]) -> None:
        enqueue(followups)

    def close(self) -> None:
        return None
