"""The webhook delivery task, on its own queue (``ttc.webhooks``) so that slow or dead
receivers never hold up a search.

A message only says "look at delivery X"; the attempt, its claim and the retry schedule
live in the database (``ttc_core.webhooks.delivery``). After a failed attempt the task
sends itself again with a countdown, up to ``webhook_max_countdown_s``: Redis redelivers
an unacknowledged message after the visibility timeout, so an hours-long countdown would
run twice; longer waits are left to the reaper, which wakes due deliveries every sweep.

Importing this module installs the process's webhook waker (the API process with the
Celery executor and every worker process do): deliveries committed here are sent to the
queue right after their transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ttc_core.webhooks import attempt_delivery, find_due_deliveries, set_waker
from ttc_worker import runtime
from ttc_worker.app import app
from ttc_worker.queues import WEBHOOK_QUEUE, WEBHOOK_TASK

log = logging.getLogger(__name__)


def wake_deliveries(ids: Sequence[str], countdown: float | None = None) -> None:
    """Send a wake-up message per delivery (after commit: the rows exist)."""
    for delivery_id in ids:
        app.send_task(WEBHOOK_TASK, args=[delivery_id], queue=WEBHOOK_QUEUE, countdown=countdown)


@app.task(name=WEBHOOK_TASK, ignore_result=True)
def deliver_webhook(delivery_id: str) -> None:
    ctx = runtime.context()
    outcome = attempt_delivery(ctx.db, ctx.settings, delivery_id)
    delay = outcome.wake_again_in()
    if delay is not None and delay <= ctx.settings.webhook_max_countdown_s:
        wake_deliveries([delivery_id], countdown=delay)


def reap_deliveries() -> None:
    """Wake due deliveries whose message was lost (called by the reaper task)."""
    ctx = runtime.context()
    wake_deliveries(find_due_deliveries(ctx.db, late_s=ctx.settings.webhook_reap_after_s))


set_waker(wake_deliveries)
