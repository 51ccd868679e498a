"""Why a job failed, in words, and when scoring trouble should end it.

- :func:`explain` turns a strategy's bare failure ("no sample was generated and scored")
  into one that names the endpoint and the first real cause, read from the failed nodes:
  ``... : 8 of 8 samples failed on endpoint 'gpu'; first: POST http://gpu:8000/v1/chat/
  completions: connection refused (is the server running there?)``.
- :func:`report_unscorable` turns the replies an attempt could not read (an LLM judge with
  no value word, a reward model's garbage answer; those nodes are scored 0 with
  ``meta.score_error``) into an ``endpoint_trouble`` event per endpoint, and, once a step
  is done, fails the job when nothing in it at all could be scored: a search ranking by
  scores that are all 0 only spends money.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ttc_core import webhooks
from ttc_core.inference.ledger import Ledger
from ttc_core.settings import Settings
from ttc_core.store.models import TERMINAL_STATUSES, Job, JobStatus, Node, NodeStatus, utcnow
from ttc_core.store.queries import append_event, lock_job

__all__ = ["explain", "report_unscorable"]


def explain(session: Session, job: Job, error: str) -> str:
    """``error`` followed by the first failed node's cause, when nodes failed."""
    failed = session.scalar(
        select(func.count(Node.id)).where(Node.job_id == job.id, Node.status == NodeStatus.failed)
    )
    if not failed:
        return error
    total = session.scalar(
        select(func.count(Node.id)).where(Node.job_id == job.id, Node.parent_id.is_not(None))
    )
    first = session.scalar(
        select(Node.meta)
        .where(Node.job_id == job.id, Node.status == NodeStatus.failed)
        .order_by(Node.created_at, Node.id)
        .limit(1)
    )
    cause = str((first or {}).get("error") or "no reason recorded")
    return (
        f"{error}: {failed} of {total} samples failed on endpoint {job.endpoint!r}; first: {cause}"
    )


def _has_real_score(session: Session, job_id: str) -> bool:
    return (
        session.scalar(
            select(Node.id)
            .where(
                Node.job_id == job_id,
                Node.score.is_not(None),
                Node.meta["score_error"].as_string().is_(None),
            )
            .limit(1)
        )
        is not None
    )


def report_unscorable(
    session: Session,
    job: Job,
    batch_id: str,
    paid: Ledger,
    settings: Settings,
    *,
    step_done: bool,
) -> bool:
    """Events for the replies this attempt could not read; when the step is done and no
    node of the job has a real score, the job fails saying why. True when it failed."""
    if not paid.unscorable:
        return False
    by_endpoint = Counter(entry["endpoint"] for entry in paid.unscorable)
    first: dict[str, str] = {}
    for entry in paid.unscorable:
        first.setdefault(entry["endpoint"], entry["reason"])
    for endpoint, count in by_endpoint.items():
        append_event(
            session,
            job.id,
            "endpoint_trouble",
            endpoint=endpoint,
            batch_id=batch_id,
            unscorable=count,
            first_reason=first[endpoint][:500],
        )
    if not step_done or _has_real_score(session, job.id):
        return False
    endpoint, count = by_endpoint.most_common(1)[0]
    reason = (
        f"nothing could be scored: endpoint {endpoint!r} gave no usable score for any of the "
        f"{count} paths of step {job.step} (each was scored 0); first reply: "
        f"{first[endpoint][:400]}"
    )
    row = lock_job(session, job.id)
    if row is None or row.status in TERMINAL_STATUSES:
        return False
    row.status = JobStatus.failed
    row.error = reason
    row.finished_at = utcnow()
    row.lease_owner = None
    append_event(session, row.id, "status_changed", status=JobStatus.failed, error=reason)
    webhooks.enqueue_for_status(session, row, settings)
    return True
