"""The step loop shared by every executor.

``advance(job_id)`` (here) is the driver step: under the job's row lock it asks the strategy
what to do, writes the planned expansion batches and the step's pending count in one
transaction, and returns the batches to enqueue *after* commit. ``expand(batch_id)``
(``ttc_core.engine.batches``, which builds on this module and not the other way round)
generates the batch's missing children (many requests in flight at once), scores them,
inserts them idempotently, and decrements the pending count; the call that brings it to
zero returns the next driver step. No chords: the counter lives in the database. Locks
follow the order in ``ttc_core.engine.claims``: the job's row first.

Both functions are safe to run twice for the same id: a finished batch is skipped, a
saved node is never generated again, and usage is added once, by whoever completes the
batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from ttc_core import webhooks
from ttc_core.engine.budgets import budget_exhausted, budget_label, trim_to_budget
from ttc_core.engine.expansion import (
    STEP_ROLES,
)
from ttc_core.engine.followup import FollowUp
from ttc_core.engine.job_failures import explain
from ttc_core.engine.job_usage import count_abandoned
from ttc_core.engine.replay_plan import replay_plan
from ttc_core.engine.runtime import EngineContext
from ttc_core.engine.tree_cache import PlanningEntry, forget, planning_entry
from ttc_core.observability import metrics
from ttc_core.search.strategies import Expand, Selection, get_strategy
from ttc_core.search.tree import NodeView, TreeView, node_id_for
from ttc_core.store.models import (
    TERMINAL_STATUSES,
    BatchStatus,
    ExpansionBatch,
    Job,
    JobEvent,
    JobStatus,
    Node,
    utcnow,
)
from ttc_core.store.queries import append_event, lock_job, path_text
from ttc_core.text_safety import safe_json

__all__ = ["FollowUp", "advance", "drive", "fail_job", "job_of_batch"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- driver step


def advance(ctx: EngineContext, job_id: str) -> list[FollowUp]:
    """Plan the next step of a job; returns the expansion batches to enqueue."""
    with ctx.db.transaction() as session:
        job = lock_job(session, job_id)
        return [] if job is None else drive(ctx, session, job)


@metrics.driver_step
def drive(ctx: EngineContext, session: Session, job: Job) -> list[FollowUp]:
    """The driver step for a job whose row the caller has locked in ``session``: from
    :func:`advance`, or inside the transaction that completed the step's last batch (one
    transaction per depth instead of two)."""
    if job.status in TERMINAL_STATUSES or job.status == JobStatus.paused:
        return []
    if job.pending_batches > 0:
        return []  # a step is in flight; its last batch enqueues the next driver step
    if job.status == JobStatus.queued:
        job.status = JobStatus.running
        job.started_at = utcnow()
        append_event(session, job.id, "status_changed", status=JobStatus.running)
    strategy = get_strategy(job.strategy)
    params = strategy.parse_params(job.params)
    # Answers in their thoughts' place; this process's view from the last step, grown by
    # what landed since, or built from the tree (``ttc_core.engine.tree_cache``).
    entry = planning_entry(ctx.trees, session, job)
    tree = entry.tree
    if job.step > 0:
        _report_step(session, job, entry, strategy.select(tree, params))
    exhausted = budget_exhausted(job)
    if exhausted:
        return _finish(
            session, job, strategy.select(tree, params), ended_by=budget_label(exhausted)
        )
    # A replay regenerates the old tree's expansions where they were; others plan anew.
    plan = (
        replay_plan(session, job, lambda: strategy.select(tree, params), params.temperature)
        if job.replay
        else strategy.plan(tree, params, job.strategy_state)
    )
    if plan.state is not None:
        job.strategy_state = plan.state
    _merge_node_meta(session, plan.node_meta)
    if any("state" in meta for meta in plan.node_meta.values()):
        forget(session, job.id)  # the view's nodes carry meta.state
    for kind, data in plan.events:
        append_event(session, job.id, kind, **data)
    if plan.finish is not None:
        return _finish(session, job, plan.finish)
    expansions, cut_by = trim_to_budget(
        job, params, plan.expansions, ctx.settings.endpoints.get(job.endpoint)
    )
    if not expansions:
        label = budget_label(cut_by) if cut_by else "budget"
        return _finish(session, job, strategy.select(tree, params), ended_by=label)
    batch_samples = ctx.settings.batch_samples_for(sum(e.k for e in expansions))
    batches = _make_batches(job, tree, expansions, batch_samples)
    job.step += 1
    entry.planned = job.step
    job.pending_batches = len(batches)
    session.add_all(batches)
    append_event(
        session,
        job.id,
        "step_planned",
        step=job.step,
        batches=len(batches),
        samples=sum(e.k for e in expansions),
    )
    webhooks.enqueue_for_status(session, job, ctx.settings)  # job.progress, if asked for
    return [FollowUp("expand", b.id) for b in batches]


@dataclass
class _Frontier:
    """How many nodes a search could still expand (generated, not final, no children yet),
    kept as nodes arrive (a :class:`~ttc_core.tree.TreeIndex`)."""

    count: int

    @classmethod
    def build(cls, tree: TreeView) -> _Frontier:
        index = cls(0)
        index.absorb(tree, list(tree.nodes.values()))
        return index

    @staticmethod
    def _open(tree: TreeView, node: NodeView) -> bool:
        return node.usable and not node.is_terminal and not tree.children(node.id)

    def absorb(self, tree: TreeView, added: Sequence[NodeView]) -> None:
        new = {n.id for n in added}
        self.count += sum(1 for n in added if self._open(tree, n))
        for parent_id in {n.parent_id for n in added if n.parent_id is not None} - new:
            parent = tree.nodes[parent_id]
            # Open before these children came (every child it has is new), closed now.
            if (
                parent.usable
                and not parent.is_terminal
                and all(c.id in new for c in tree.children(parent.id))
            ):
                self.count -= 1


def _report_step(session: Session, job: Job, entry: PlanningEntry, best: Selection) -> None:
    """Progress events of a step whose expansions have all landed: ``step_done``, and
    ``best_changed`` when the strategy's current pick differs from the last one reported
    (read back from the events, so a re-run or a manual expansion never repeats it; the
    planning view keeps it while the job stays in this process)."""
    tree = entry.tree
    frontier = tree.index(_Frontier, _Frontier.build).count
    append_event(
        session,
        job.id,
        "step_done",
        step=job.step,
        nodes=len(tree.nodes),
        frontier=frontier,
        best_score=best.score,
        completion_tokens=job.completion_tokens,
    )
    if best.node_id is None:
        return
    last = entry.last_best
    if last is None:
        data = session.scalar(
            select(JobEvent.data)
            .where(JobEvent.job_id == job.id, JobEvent.kind == "best_changed")
            .order_by(JobEvent.seq.desc())
            .limit(1)
        )
        last = None if data is None else {k: data.get(k) for k in _BEST_FIELDS}
    current = {"node_id": best.node_id, "answer": best.answer, "score": best.score}
    if last != current:
        append_event(session, job.id, "best_changed", step=job.step, **current)
    entry.last_best = current


_BEST_FIELDS = ("node_id", "answer", "score")


def _merge_node_meta(session: Session, updates: dict[str, dict[str, Any]]) -> None:
    """Merge ``updates`` into the nodes' ``meta``. Locks in id order, after the job's lock
    (the lock order of ``ttc_core.engine.claims``). On Postgres one statement per chunk of nodes
    merges in the database (MCTS writes every node's visits when it ends: 100,000 rows
    would otherwise be read back and written one by one)."""
    if not updates:
        return
    ids = sorted(updates)
    if session.get_bind().dialect.name == "postgresql":
        for start in range(0, len(ids), _META_CHUNK):
            # One JSON document per chunk ({node id: patch}): one parameter to send.
            chunk = {i: updates[i] for i in ids[start : start + _META_CHUNK]}
            doc = json.dumps(chunk)
            if "\\u" in doc:  # escapes: strings to clean (NULs, lone surrogates)
                doc = json.dumps(safe_json(chunk))
            session.execute(_LOCK_NODES, {"doc": doc})
            session.execute(_MERGE_META, {"doc": doc})
        return
    rows = session.execute(
        select(Node.id, Node.meta).where(Node.id.in_(ids)).order_by(Node.id)
    ).all()
    session.execute(
        update(Node),
        [{"id": node_id, "meta": {**(meta or {}), **updates[node_id]}} for node_id, meta in rows],
    )


_META_CHUNK = 5000
_LOCK_NODES = text(
    "SELECT id FROM nodes WHERE id IN (SELECT jsonb_object_keys(CAST(:doc AS jsonb))) "
    "ORDER BY id FOR UPDATE"
)
_MERGE_META = text(
    "UPDATE nodes AS n SET meta = (coalesce(n.meta::jsonb, '{}'::jsonb) || v.value)::json "
    "FROM jsonb_each(CAST(:doc AS jsonb)) AS v WHERE n.id = v.key"
)


def _make_batches(
    job: Job, tree: TreeView, expansions: Sequence[Expand], batch_samples: int
) -> list[ExpansionBatch]:
    """Pack expansions into batches of at most ``batch_samples`` children each."""
    items: list[list[dict[str, Any]]] = [[]]
    room = batch_samples
    for exp in expansions:
        first = tree.next_child_index(exp.parent_id) if exp.first_index is None else exp.first_index
        left = exp.k
        while left > 0:
            if room == 0:
                items.append([])
                room = batch_samples
            take = min(left, room)
            items[-1].append(
                {
                    "parent_id": exp.parent_id,
                    "first_index": first,
                    "k": take,
                    "role": exp.role,
                    "temperature": exp.temperature,
                }
            )
            first += take
            left -= take
            room -= take
    step = job.step + 1
    return [
        ExpansionBatch(
            id=node_id_for(job.id, f"batch:{step}", i),
            job_id=job.id,
            step=step,
            spec=spec,
            status=BatchStatus.pending,
            attempts=0,
            requests=0,
        )
        for i, spec in enumerate(items)
        if spec
    ]


def _finish(
    session: Session, job: Job, selection: Selection, ended_by: str | None = None
) -> list[FollowUp]:
    """Record the job's result; a job of a problem batch hands back the batch's driver
    step (the batch plans its next round once all its jobs are done)."""
    forget(session, job.id)  # a finished job keeps no planning view
    text = None
    if selection.node_id is not None:
        node = session.get(Node, selection.node_id)
        if node is not None and node.role in STEP_ROLES:
            params = get_strategy(job.strategy).parse_params(job.params)
            delimiter = params.step_delimiter()
            steps = [n.text for n in path_text(session, node.id) if n.role in STEP_ROLES]
            text = delimiter.join(steps)
        elif node is not None:
            text = node.text
    job.result = {
        "answer": selection.answer,
        "text": text,
        "score": selection.score,
        "correct": selection.correct,
        "node_id": selection.node_id,
        "ended_by": ended_by or "strategy",
        "details": selection.details,
    }
    job.status = JobStatus.failed if selection.error else JobStatus.succeeded
    job.error = explain(session, job, selection.error) if selection.error else None
    job.finished_at = utcnow()
    job.lease_owner = None
    append_event(
        session,
        job.id,
        "status_changed",
        status=job.status,
        answer=selection.answer,
        score=selection.score,
        ended_by=ended_by or "strategy",
        error=selection.error,
    )
    webhooks.enqueue_for_status(session, job)
    metrics.job_finished(session, job)
    return [FollowUp("batch", job.batch_id)] if job.batch_id else []


# ---------------------------------------------------------------- expansion


def fail_job(ctx: EngineContext, job_id: str, error: str) -> None:
    """Mark a job failed with the reason (an unexpected error in its step loop)."""
    with ctx.db.transaction() as session:
        job = lock_job(session, job_id)
        if job is None or job.status in TERMINAL_STATUSES:
            return
        count_abandoned(session, job, ctx.settings.endpoints)  # paid for, never completed
        job.status = JobStatus.failed
        job.error = error[:2000]
        job.finished_at = utcnow()
        append_event(session, job.id, "status_changed", status=JobStatus.failed, error=job.error)
        webhooks.enqueue_for_status(session, job, ctx.settings)
        metrics.job_finished(session, job)


def job_of_batch(ctx: EngineContext, batch_id: str) -> str | None:
    with ctx.db.session() as session:
        return session.scalar(select(ExpansionBatch.job_id).where(ExpansionBatch.id == batch_id))
