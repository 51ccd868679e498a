"""The reaper: finds work that stopped moving and puts it back in the queue.

Run every few seconds (Celery beat in the service; at start-up in embedded mode). It is
what makes a job finish after a worker is killed, the broker loses its messages or the
API died between committing a job and enqueueing it:

- a job still ``queued`` after ``stall_s``: its first driver step is re-enqueued;
- a ``running`` job with no batch pending whose row has not changed for ``stall_s``: its
  driver step is re-enqueued;
- a pending batch of a live job whose message is lost: its claim expired (the worker
  that took the message died) and no message was sent since, or its last message
  (``enqueued_at``) was never taken within ``lost_after_s`` (the broker's visibility
  timeout by default: a message delivered to a worker that died comes back by then).

A batch whose message is merely waiting in a long queue is never sent twice: the reaper
sends one message per loss and records it (``enqueued_at``, compare-and-set, so two
overlapping sweeps send it once). Re-enqueueing stays safe anyway: claims are fenced,
driver steps and batches tolerate running twice. Locks follow ``ttc_core.engine.claims``: the
jobs first (in id order), then their batches.

The same sweep wakes webhook deliveries that are overdue (their wake-up message was
lost, or their retry was longer than a countdown may be):
``ttc_core.webhooks.find_due_deliveries``, re-exported here.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from ttc_core.engine.steps import FollowUp
from ttc_core.store.db import Database
from ttc_core.store.models import BatchStatus, ExpansionBatch, Job, JobStatus, utcnow
from ttc_core.store.queries import append_event
from ttc_core.webhooks import find_due_deliveries

__all__ = ["find_due_deliveries", "find_stalled"]

log = logging.getLogger(__name__)


def find_stalled(
    db: Database,
    *,
    stall_s: float,
    lost_after_s: float | None = None,
    no_message_waiting: Callable[[], bool] | None = None,
) -> list[FollowUp]:
    """Driver steps and batches to send again (see the module docstring).

    ``no_message_waiting``: asks the broker whether it holds no expansion message at all
    (none queued, none delivered and unacked); when it says so, every unclaimed batch
    older than ``stall_s`` has provably lost its message and is sent at once instead of
    after ``lost_after_s`` (a broker that restarted empty, a sender that died between
    commit and send)."""
    now = utcnow()
    before = now - dt.timedelta(seconds=stall_s)
    lost_before = now - dt.timedelta(seconds=stall_s if lost_after_s is None else lost_after_s)
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
        lost = _lost_batches(now, max(before, lost_before))
        candidates = _candidates(session, lost)
        # Some of these may only wait in a long queue: send them early only when the
        # broker holds no expansion message at all.
        if (
            candidates
            and lost_before < before
            and (no_message_waiting is None or not no_message_waiting())
        ):
            lost = _lost_batches(now, lost_before)
            candidates = _candidates(session, lost)
        jobs = sorted({*queued, *idle, *(job_id for _, job_id in candidates)})
        if not jobs:
            return []
        session.execute(select(Job.id).where(Job.id.in_(jobs)).order_by(Job.id).with_for_update())
        batches = []
        for batch_id, job_id in sorted(candidates):
            # Compare-and-set: a sweep that overlaps this one sends nothing a second time.
            sent = session.execute(
                update(ExpansionBatch)
                .where(ExpansionBatch.id == batch_id, lost)
                .values(enqueued_at=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(sent, "rowcount", 0) == 1:
                batches.append((batch_id, job_id))
        for job_id in [*queued, *idle]:
            followups.append(FollowUp("advance", job_id))
            append_event(session, job_id, "reaped", what="driver step")
        for batch_id, job_id in batches:
            followups.append(FollowUp("expand", batch_id))
            append_event(session, job_id, "reaped", what="expansion batch", batch_id=batch_id)
        if queued or idle:
            # Touch re-enqueued jobs so the next sweep waits a full stall_s again.
            session.execute(
                update(Job)
                .where(Job.id.in_([*queued, *idle]))
                .values(updated_at=now)
                .execution_options(synchronize_session=False)
            )
    if followups:
        log.warning("reaper: re-enqueueing %d stalled steps", len(followups))
    return followups


def _candidates(session: Session, lost: ColumnElement[bool]) -> list[tuple[str, str]]:
    rows = session.execute(
        select(ExpansionBatch.id, ExpansionBatch.job_id)
        .join(Job, Job.id == ExpansionBatch.job_id)
        .where(Job.status.in_([JobStatus.running, JobStatus.paused]), lost)
    ).all()
    return [(batch_id, job_id) for batch_id, job_id in rows]


def _lost_batches(now: dt.datetime, lost_before: dt.datetime) -> ColumnElement[bool]:
    """Pending batches whose message is lost (see the module docstring)."""
    sent = func.coalesce(ExpansionBatch.enqueued_at, ExpansionBatch.created_at)
    unheld = or_(ExpansionBatch.claimed_until.is_(None), ExpansionBatch.claimed_until < now)
    return and_(
        ExpansionBatch.status == BatchStatus.pending,
        or_(
            # Its holder died after taking the message, and nothing was sent since.
            and_(ExpansionBatch.claimed_until < now, sent < ExpansionBatch.claimed_until),
            # The last message sent was never taken (or its taker died too).
            and_(unheld, sent < lost_before),
        ),
    )
