"""Operator actions on a live job, as flags in the database that the step loop checks.

Every action locks the job's row first, then the nodes it changes (in id order): the lock
order of ``ttc_core.engine.claims``. Node queries name the job (``job_id``), so they use the
``(job_id, parent_id, child_index)`` index instead of scanning every job's nodes.

Every action is recorded as a job event. Pause, cancel and prune take effect at the next
driver step or expansion (the step loop reads them from the database, so they survive
restarts); resume and expand return the follow-ups the caller dispatches after commit.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from ttc_core import webhooks
from ttc_core.engine.steps import FollowUp
from ttc_core.errors import ConflictError, InputError, NotFoundError
from ttc_core.observability import metrics
from ttc_core.search.tree import NodeRole, node_id_for
from ttc_core.store.models import (
    TERMINAL_STATUSES,
    BatchStatus,
    ExpansionBatch,
    Job,
    JobStatus,
    Node,
    NodeStatus,
    utcnow,
)
from ttc_core.store.queries import append_event, lock_job


def _job(session: Session, job_id: str, tenant: str | None) -> Job:
    job = lock_job(session, job_id)
    if job is None or (tenant is not None and job.tenant != tenant):
        raise NotFoundError(f"no job {job_id}")
    return job


def cancel_job(session: Session, job_id: str, *, tenant: str | None = None) -> Job:
    """Cancel a job: no new expansions are planned or started. Idempotent."""
    job = _job(session, job_id, tenant)
    if job.status not in TERMINAL_STATUSES:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
        append_event(session, job.id, "status_changed", status=JobStatus.cancelled)
        metrics.job_finished(session, job)
        webhooks.enqueue_for_status(session, job)
    return job


def pause_job(session: Session, job_id: str, *, tenant: str | None = None) -> Job:
    """Hold a job: in-flight expansions finish and are kept, nothing new is planned."""
    job = _job(session, job_id, tenant)
    if job.status in TERMINAL_STATUSES:
        raise ConflictError(f"job {job_id} is {job.status}; only a live job can be paused")
    if job.status != JobStatus.paused:
        job.status = JobStatus.paused
        append_event(session, job.id, "status_changed", status=JobStatus.paused)
    return job


def resume_job(
    session: Session, job_id: str, *, tenant: str | None = None
) -> tuple[Job, list[FollowUp]]:
    """Continue a paused job from its persisted tree."""
    job = _job(session, job_id, tenant)
    if job.status in TERMINAL_STATUSES:
        raise ConflictError(f"job {job_id} is {job.status}; only a paused job can be resumed")
    if job.status != JobStatus.paused:
        return job, []
    job.status = JobStatus.running if job.started_at else JobStatus.queued
    append_event(session, job.id, "status_changed", status=job.status, action="resume")
    return job, [FollowUp("advance", job.id)]


def _node(session: Session, job: Job, node_id: str) -> Node:
    node = session.get(Node, node_id)
    if node is None or node.job_id != job.id:
        raise NotFoundError(f"no node {node_id} in job {job.id}")
    return node


def prune_node(
    session: Session, job_id: str, node_id: str, *, tenant: str | None = None
) -> tuple[Job, int]:
    """Cut a subtree: it is never expanded again; results still in flight under it are
    kept but marked pruned when they land. Returns the job and the nodes pruned."""
    job = _job(session, job_id, tenant)
    node = _node(session, job, node_id)
    if node.parent_id is None:
        raise ConflictError("the root cannot be pruned; cancel the job instead")
    top = select(Node.id).where(Node.job_id == job.id, Node.id == node.id)
    below = top.cte("below", recursive=True)
    child = aliased(Node)
    below = below.union_all(
        select(child.id).join(below, (child.job_id == job.id) & (child.parent_id == below.c.id))
    )
    live = (Node.job_id == job.id) & Node.status.in_([NodeStatus.done, NodeStatus.generated])
    # Lock order (ttc_core.engine.claims): the job (held), then the nodes in id order, so that a
    # batch writing scores into the same subtree waits instead of deadlocking.
    ids = session.scalars(
        select(Node.id)
        .where(Node.id.in_(select(below.c.id)), live)
        .order_by(Node.id)
        .with_for_update()
    ).all()
    if ids:
        # The same set as the ids just locked (a subquery, not a list: a subtree can hold
        # more ids than one statement may bind).
        session.execute(
            update(Node)
            .where(Node.id.in_(select(below.c.id)), live)
            .values(status=NodeStatus.pruned)
            .execution_options(synchronize_session=False)
        )
    # Counted from the locked rows: an UPDATE's rowcount over a recursive CTE is -1 on
    # SQLite, and the count is part of the answer on every database.
    count = len(ids)
    job.tree_epoch += 1  # planning views kept by workers hold these nodes as they were
    append_event(session, job.id, "node_pruned", node_id=node.id, nodes=count)
    return job, count


def expand_node(
    session: Session, job_id: str, node_id: str, k: int, *, tenant: str | None = None
) -> tuple[Job, list[FollowUp]]:
    """Ask for ``k`` more children of a node now (re-opening it if it was pruned). A
    finished job runs again and re-selects its answer over the grown tree."""
    if not 1 <= k <= 256:
        raise InputError("k must be between 1 and 256", field="k")
    job = _job(session, job_id, tenant)
    node = _node(session, job, node_id)
    if job.status == JobStatus.cancelled:
        raise ConflictError(f"job {job_id} is cancelled")
    if node.status == NodeStatus.failed:
        raise ConflictError(f"node {node_id} failed; expand its parent instead")
    if node.status == NodeStatus.pruned:
        node.status = NodeStatus.done
    kids = session.execute(
        select(Node.child_index, Node.role).where(Node.job_id == job.id, Node.parent_id == node.id)
    ).all()
    first = max((i for i, _ in kids), default=-1) + 1
    # Children still planned in pending batches (an expand a moment ago) are not rows
    # yet: start after them, or both batches would claim the same child indexes (and the
    # same batch id).
    pending = session.scalars(
        select(ExpansionBatch.spec).where(
            ExpansionBatch.job_id == job.id, ExpansionBatch.status == BatchStatus.pending
        )
    ).all()
    for spec in pending:
        for item in spec:
            if item.get("parent_id") == node.id:
                first = max(first, int(item["first_index"]) + int(item["k"]))
    role = (
        kids[0][1] if kids else (NodeRole.sample if node.role == NodeRole.root else NodeRole.step)
    )
    step = job.step + 1
    batch = ExpansionBatch(
        id=node_id_for(job.id, f"manual:{step}:{node.id}", first),
        job_id=job.id,
        step=job.step,
        spec=[{"parent_id": node.id, "first_index": first, "k": k, "role": role}],
        status=BatchStatus.pending,
        attempts=0,
        requests=0,
    )
    session.add(batch)
    job.pending_batches += 1
    # Kept planning views are built again: the node may have been re-opened, and this
    # batch's step may be one a view has already loaded.
    job.tree_epoch += 1
    if job.status in TERMINAL_STATUSES:
        job.status = JobStatus.running
        job.finished_at = None
        append_event(session, job.id, "status_changed", status=JobStatus.running, action="expand")
    append_event(session, job.id, "node_expand_requested", node_id=node.id, k=k)
    return job, [FollowUp("expand", batch.id)]
