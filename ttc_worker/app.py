"""The Celery application.

Settings follow ARCHITECTURE.md: late acks with reject-on-worker-lost (the attempt
counter in Postgres stops poison loops), prefetch 1, hard and soft time limits on every
task, a visibility timeout longer than any task, separate queues for driver steps and
expansions. Redis should run with ``maxmemory-policy noeviction`` (see deploy/).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from kombu import Queue

from ttc_core.settings import get_settings
from ttc_worker.queues import (
    ADVANCE_TASK,
    DRIVER_QUEUE,
    EXPAND_QUEUE,
    EXPAND_TASK,
    MAINTENANCE_QUEUE,
    REAP_TASK,
    WEBHOOK_QUEUE,
    WEBHOOK_TASK,
)

settings = get_settings()

app = Celery(
    "ttc",
    broker=settings.broker_url,
    include=["ttc_worker.tasks", "ttc_worker.webhook_tasks"],
)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_time_limit=settings.task_time_limit_s,
    task_soft_time_limit=max(1, settings.task_time_limit_s - 30),
    broker_transport_options={"visibility_timeout": settings.task_time_limit_s * 2 + 60},
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue=DRIVER_QUEUE,
    task_queues=[
        Queue(DRIVER_QUEUE),
        Queue(EXPAND_QUEUE),
        Queue(MAINTENANCE_QUEUE),
        Queue(WEBHOOK_QUEUE),
    ],
    task_routes={
        ADVANCE_TASK: {"queue": DRIVER_QUEUE},
        EXPAND_TASK: {"queue": EXPAND_QUEUE},
        REAP_TASK: {"queue": MAINTENANCE_QUEUE},
        WEBHOOK_TASK: {"queue": WEBHOOK_QUEUE},
    },
    beat_schedule={
        "reap-stalled-work": {
            "task": REAP_TASK,
            "schedule": settings.reaper_interval_s,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.reaper_interval_s},
        }
    },
    worker_hijack_root_logger=False,
    # Task events cost a Redis publish per task state on the critical path of every tree
    # depth; Flower switches them on at run time (``enable_events``) when it is running.
    worker_send_task_events=settings.celery_events,
    task_send_sent_event=settings.celery_events,
    # Remote control listens on Redis pub/sub; when Redis restarts, that consumer dies with
    # "Unrecoverable error" and takes the worker with it (kombu + redis-py). Off unless
    # asked for (Flower's inspect and enable_events need it).
    worker_enable_remote_control=settings.celery_remote_control,
)


@worker_process_init.connect
def _warm_worker_process(**_: Any) -> None:
    """Build the per-process engine context (HTTP pool, limiter, math parser) at start."""
    from ttc_worker import runtime

    runtime.context()
