"""The reaper: finds work that stopped moving and puts it back in the queue.

Run every few seconds (Celery beat in the service; at start-up in embedded mode). It is
what makes a job finish after a worker is killed, the broker loses its messages or the
API died between committing a job and enqueueing it:

- a job still ``queued`` after ``stall_s``: its first driver step is re-enqueued;
- a ``running`` job with no batch pending whose row has not changed for ``stall_s``: its
  driver step is re-enqueued;
- a pending batch of a live job whose claim expired, or that was never claimed and is
  older than ``stall_s``: it is re-enqueued (its attempts are counted when it starts).

Re-enqueueing is always safe: driver steps and batches tolerate running twice.

The same sweep wakes webhook deliveries that are overdue (their wake-up message was
lost, or their retry was longer than a countdown may be):
``ttc_core.webhooks.find_due_deliveries``, re-exported here.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import and_, or_, select

from ttc_core.db import Database
from ttc_core.models import BatchStatus, ExpansionBatch, Job, JobStatus, utcnow
from ttc_core.steps import FollowUp
from ttc_core.store import append_event
from ttc_core.webhooks import find_due_deliveries

__all__ = ["find_due_deliveries", "find_stalled"]

log = logging.getLogger(__name__)


def find_stalled(db: Database, *, stall_s: float) -> list[FollowUp]:
    now = utcnow()
    before = now - dt.timedelta(seconds=stall_s)
    followups: list[FollowUp] = []
    with db.transaction() as session:
        queued = session.scalars(
            select(Job.id).where(Job.status == JobStatus.queued, Job.created_at < before)
        ).all()
        idle = session.scalars(
            select(Job.id).where(
                Job.status == JobStatus.running,
                Job.pending_batches <= 0,
                Job.updated_at < before,
            )
        ).all()
        batches = session.execute(
            select(ExpansionBatch.id, ExpansionBatch.job_id)
            .join(Job, Job.id == ExpansionBatch.job_id)
            .where(
                Job.status.in_([JobStatus.running, JobStatus.paused]),
                ExpansionBatch.status == BatchStatus.pending,
                or_(
                    ExpansionBatch.claimed_until < now,
                    and_(
                        ExpansionBatch.claimed_until.is_(None),
                        ExpansionBatch.created_at < before,
                    ),
                ),
            )
        ).all()
        for job_id in [*queued, *idle]:
            followups.append(FollowUp("advance", job_id))
            append_event(session, job_id, "reaped", what="driver step")
        for batch_id, job_id in batches:
            followups.append(FollowUp("expand", batch_id))
            append_event(session, job_id, "reaped", what="expansion batch", batch_id=batch_id)
        if followups:
            # Touch re-enqueued jobs so the next sweep waits a full stall_s again.
            for job_id in {*queued, *idle}:
                job = session.get(Job, job_id)
                if job is not None:
                    job.updated_at = now
            for batch_id, _ in batches:
                batch = session.get(ExpansionBatch, batch_id)
                if batch is not None and batch.claimed_until is None:
                    batch.created_at = now
    if followups:
        log.warning("reaper: re-enqueueing %d stalled steps", len(followups))
    return followups
