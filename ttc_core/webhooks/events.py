"""Turning a job's status change into a delivery row (in the caller's transaction).

``enqueue_for_status(session, job)`` is the one call the step loop and the operator
actions make after they set a job's status: a terminal status the job's webhook asked
for becomes a delivery; a running job that asked for ``job.progress`` gets one at most
every ``webhook_progress_interval_s``. The row is written in the same transaction as the
status, so the event is as durable as the status itself; the sender is woken after
commit (:mod:`ttc_core.webhooks.wakeup`).
"""

from __future__ import annotations

import datetime as dt
import enum
import random
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ttc_core.settings import Settings, get_settings
from ttc_core.store.models import DeliveryStatus, Job, JobStatus, WebhookDelivery, utcnow
from ttc_core.webhooks.secret_store import aware
from ttc_core.webhooks.wakeup import wake_after_commit


class WebhookEvent(enum.StrEnum):
    #: The job finished with a result.
    succeeded = "job.succeeded"
    #: The job finished without a result.
    failed = "job.failed"
    #: A user cancelled the job.
    cancelled = "job.cancelled"
    #: The job planned another step (throttled; opt-in).
    progress = "job.progress"


TERMINAL_EVENTS: dict[str, WebhookEvent] = {
    JobStatus.succeeded: WebhookEvent.succeeded,
    JobStatus.failed: WebhookEvent.failed,
    JobStatus.cancelled: WebhookEvent.cancelled,
}

EventName = Literal["job.succeeded", "job.failed", "job.cancelled", "job.progress"]
DEFAULT_EVENTS: tuple[EventName, ...] = ("job.succeeded", "job.failed", "job.cancelled")


class WebhookSpec(BaseModel):
    """Where a job's events go. The URL is checked by the SSRF guard at submission and
    again (resolved afresh, connected to the checked address) at every attempt."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/ttc",
                    "events": ["job.succeeded", "job.failed", "job.cancelled"],
                }
            ]
        },
    )

    url: str = Field(min_length=1, max_length=2048, description="https URL of the receiver")
    events: list[EventName] = Field(
        default_factory=lambda: list(DEFAULT_EVENTS),
        min_length=1,
        max_length=4,
        description="events to deliver (default: the three terminal ones)",
    )

    @field_validator("events")
    @classmethod
    def _distinct(cls, events: list[EventName]) -> list[EventName]:
        return list(dict.fromkeys(events))


def new_message_id() -> str:
    """The ``webhook-id`` of one event: kept by every retry and redelivery."""
    return f"msg_{uuid.uuid4().hex}"


def jittered(delay_s: float, rng: random.Random | None = None) -> float:
    """``delay_s`` ± 20%, so that receivers that came back are not hit all at once."""
    if delay_s <= 0:
        return 0.0
    return delay_s * (rng or random).uniform(0.8, 1.2)


def _usage(job: Job) -> dict[str, Any]:
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.completion_tokens,
        "total_tokens": job.prompt_tokens + job.completion_tokens,
        "requests": job.requests,
        "cost": round(job.cost or 0.0, 8),
    }


def _stamp(moment: dt.datetime | None) -> str | None:
    moment = aware(moment)
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def event_payload(job: Job, event: WebhookEvent, now: dt.datetime) -> dict[str, Any]:
    """The body of a delivery: ``{"type", "timestamp", "data"}``."""
    data: dict[str, Any] = {
        "job_id": job.id,
        "status": job.status,
        "strategy": job.strategy,
        "endpoint": job.endpoint,
        "usage": _usage(job),
    }
    if event is WebhookEvent.progress:
        data.update(step=job.step, nodes=job.node_count, failed_nodes=job.failed_nodes)
    else:
        result = job.result or None
        data["result"] = (
            {
                k: result.get(k)
                for k in ("answer", "score", "correct", "node_id", "ended_by")
                if k in result
            }
            if result
            else None
        )
        data["error"] = job.error
        data["finished_at"] = _stamp(job.finished_at)
    return {"type": str(event), "timestamp": _stamp(now), "data": data}


def add_delivery(
    session: Session, job: Job, event: WebhookEvent, settings: Settings
) -> WebhookDelivery | None:
    """Write a delivery of ``event`` for the job's webhook (if it asked for that event)
    and wake its sender after commit."""
    spec = job.webhook or {}
    if not spec.get("url") or str(event) not in spec.get("events", ()):
        return None
    now = utcnow()
    delivery = WebhookDelivery(
        id=new_message_id(),
        job_id=job.id,
        tenant=job.tenant,
        event=str(event),
        url=spec["url"],
        payload=event_payload(job, event, now),
        status=DeliveryStatus.pending,
        attempts=0,
        manual=False,
        next_attempt_at=now + dt.timedelta(seconds=jittered(settings.webhook_retry_schedule_s[0])),
        created_at=now,
    )
    session.add(delivery)
    wake_after_commit(session, delivery.id)
    return delivery


def enqueue_for_status(session: Session, job: Job, settings: Settings | None = None) -> None:
    """Record the webhook event of the job's current status, if it has one to send."""
    if not job.webhook:
        return
    settings = settings or get_settings()
    event = TERMINAL_EVENTS.get(job.status)
    if event is not None:
        add_delivery(session, job, event, settings)
    elif job.status == JobStatus.running and "job.progress" in job.webhook.get("events", ()):
        last = session.scalar(
            select(func.max(WebhookDelivery.created_at)).where(
                WebhookDelivery.job_id == job.id, WebhookDelivery.event == WebhookEvent.progress
            )
        )
        last = aware(last)
        interval = dt.timedelta(seconds=settings.webhook_progress_interval_s)
        if last is None or utcnow() - last >= interval:
            add_delivery(session, job, WebhookEvent.progress, settings)
