"""Planning views kept between driver steps, brought up to date with what changed.

Reading a job's whole tree at every driver step makes a search that takes a step per few
expansions (MCTS, ToT-DFS) cost O(N^2). This process keeps the view each driver step
built (a bounded LRU), with the job's ``step`` and ``event_seq`` as it read them. The
next step of the job reads only the nodes of batches planned since (``expansion_batches.step
>= step``: the step's batches and manual expansions) and the nodes that were still
waiting for their scores, and upserts them into the view. Node rows change outside
batches only through operator actions (prune, expand of a pruned node), which record
``node_pruned`` / ``node_expand_requested`` events: when one is newer than the kept view,
or when this process has no view of the job (another worker ran its last step, a
restart), the view is built from the whole tree again (:func:`ttc_core.store.load_tree`).
Both ways give the same view (``tests/engine/test_planning_views.py``), so strategies
stay pure and a job resumes anywhere.

A view is taken out of the cache while a driver step uses it and put back after, so two
steps never share one; the job's row lock serialises them anyway.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from ttc_core.models import ExpansionBatch, Job, JobEvent, Node, NodeStatus
from ttc_core.store import TREE_COLUMNS, load_tree
from ttc_core.tree import NodeView, TreeView

#: Events of operator actions that change node rows outside expansion batches.
TREE_EDITS = ("node_pruned", "node_expand_requested")


@dataclass
class _Kept:
    view: TreeView
    step: int
    event_seq: int
    #: Nodes saved before their scores (``generated``): read again until they are done.
    waiting: set[str]


class PlanningViews:
    """A bounded, per-process store of planning views by job id."""

    def __init__(self, capacity: int = 128) -> None:
        self.capacity = capacity
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._lock = threading.Lock()
        self._in_use: dict[str, _Kept] = {}
        #: How views were obtained (for benchmarks and tests): ``built`` / ``caught_up``.
        self.counts = {"built": 0, "caught_up": 0}

    def load(self, session: Session, job: Job) -> TreeView:
        """The job's tree as it stands, for the driver step holding the job's row lock;
        hand it back with :meth:`keep` when the step is done with it."""
        with self._lock:
            kept = self._kept.pop(job.id, None)
        if (
            kept is not None
            and kept.event_seq <= job.event_seq
            and not _edited_since(session, job.id, kept.event_seq)
        ):
            fresh = _changed_nodes(session, job.id, kept)
            kept.view.upsert(fresh)
            view = kept.view
            waiting = {n.id for n in fresh if n.status == NodeStatus.generated} | {
                i for i in kept.waiting if view.nodes[i].status == NodeStatus.generated
            }
            self.counts["caught_up"] += 1
            return self._lend(_Kept(view, job.step, job.event_seq, waiting), job)
        view = load_tree(session, job.id)
        waiting = {n.id for n in view.nodes.values() if n.status == NodeStatus.generated}
        self.counts["built"] += 1
        return self._lend(_Kept(view, job.step, job.event_seq, waiting), job)

    def _lend(self, kept: _Kept, job: Job) -> TreeView:
        with self._lock:
            self._in_use[job.id] = kept
        return kept.view

    def keep(self, job_id: str, view: TreeView) -> None:
        """Put back the view :meth:`load` gave (unchanged by the step: views are read-only
        to strategies)."""
        with self._lock:
            lent = self._in_use.pop(job_id, None)
            if lent is None or lent.view is not view:
                return
            self._kept[job_id] = lent
            self._kept.move_to_end(job_id)
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._kept.pop(job_id, None)
            self._in_use.pop(job_id, None)


def _edited_since(session: Session, job_id: str, event_seq: int) -> bool:
    return (
        session.scalar(
            select(JobEvent.id)
            .where(
                JobEvent.job_id == job_id,
                JobEvent.seq > event_seq,
                JobEvent.kind.in_(TREE_EDITS),
            )
            .limit(1)
        )
        is not None
    )


def _changed_nodes(session: Session, job_id: str, kept: _Kept) -> list[NodeView]:
    since = select(ExpansionBatch.id).where(
        ExpansionBatch.job_id == job_id, ExpansionBatch.step >= kept.step
    )
    changed: ColumnElement[bool] = Node.batch_id.in_(since)
    if kept.waiting:
        changed = or_(changed, Node.id.in_(list(kept.waiting)))
    rows = session.execute(select(*TREE_COLUMNS).where(Node.job_id == job_id, changed)).all()
    return [NodeView(*row) for row in rows]


#: The views of this process (one per worker process; the local executor shares it).
VIEWS = PlanningViews()
