"""Each job's planning view, kept by the process between driver steps, so that a step
reads the nodes that landed since the last one instead of the whole tree.

A driver step runs when every batch of the job is done (``jobs.pending_batches`` is 0),
and a done batch's nodes never change again except by an operator (prune, expand). So a
view that holds every node of the batches of steps up to ``loaded`` grows into the
current tree by the nodes of the batches of steps ``loaded + 1 .. jobs.step`` (one
indexed query, ``ix_expansion_batches_job_step`` then ``ix_nodes_batch``), and the
strategy's indexes (``TreeView.index``: MCTS statistics, the best terminal) absorb them.
What an operator changes in place bumps ``jobs.tree_epoch`` (``ttc_core.engine.control``), and a
view of another epoch is built again from the tree.

Correctness never depends on the cache: a process that holds no view of the job (a
restarted worker, a step that moved to another process, an evicted entry) builds it
from the tree (``load_tree``), which is what the view grown step by step equals (the
tests check it after random steps, prunes and restarts). A job tends to stay on one
process anyway: the worker that completes a step's last batch runs the next driver step
in the same transaction and claims its first batch (``ttc_core.engine.batches``).

A view is taken out of the cache for the step (two steps of one job never share one) and
put back only when the step's transaction commits: a step that rolls back leaves no view
behind, whatever it had absorbed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from ttc_core.engine.thinking import planning_additions, planning_view
from ttc_core.observability import metrics
from ttc_core.search.tree import TreeView
from ttc_core.store.models import Job
from ttc_core.store.queries import load_nodes_since, load_tree

__all__ = ["PlanningEntry", "TreeCache", "planning_entry"]


@dataclass
class PlanningEntry:
    """A job's planning view and what it is known to hold."""

    job_id: str
    #: ``jobs.tree_epoch`` the view was built under.
    epoch: int
    #: Every node of the batches of steps up to this one is in the view.
    loaded: int
    tree: TreeView
    #: ``jobs.step`` when the step that kept this view committed: while the job's step is
    #: still that, no other process has reported a step since (``last_best`` holds).
    planned: int = -1
    #: The last ``best_changed`` this job reported (``node_id``, ``answer``, ``score``),
    #: ``{}`` when it reported none, or None when unknown (read from the events then).
    last_best: dict[str, Any] | None = None
    #: How the view was had this step (``kept``: grown by ``added`` nodes; ``built``).
    source: str = "built"
    added: int = 0


class TreeCache:
    """A process's planning views, least recently used first out, at most ``max_nodes``
    nodes in all (a view bigger than that is not kept). Thread-safe: a worker's pool may
    run many jobs' steps at once."""

    def __init__(self, max_nodes: int) -> None:
        self.max_nodes = max_nodes
        self._entries: OrderedDict[str, PlanningEntry] = OrderedDict()
        self._nodes = 0
        self._lock = threading.Lock()
        #: Steps served by growing a kept view, and by building one.
        self.hits = 0
        self.builds = 0

    def take(self, job_id: str) -> PlanningEntry | None:
        with self._lock:
            entry = self._entries.pop(job_id, None)
            if entry is not None:
                self._nodes -= len(entry.tree.nodes)
            return entry

    def peek(self, job_id: str) -> PlanningEntry | None:
        """The kept view of a job, left in place (for inspection: a step takes it)."""
        with self._lock:
            return self._entries.get(job_id)

    def put(self, entry: PlanningEntry) -> None:
        size = len(entry.tree.nodes)
        with self._lock:
            old = self._entries.pop(entry.job_id, None)
            if old is not None:
                self._nodes -= len(old.tree.nodes)
            if size > self.max_nodes:
                return
            self._entries[entry.job_id] = entry
            self._nodes += size
            while self._nodes > self.max_nodes:
                _, evicted = self._entries.popitem(last=False)
                self._nodes -= len(evicted.tree.nodes)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._nodes = 0

    def __len__(self) -> int:
        return len(self._entries)


def planning_entry(cache: TreeCache, session: Session, job: Job) -> PlanningEntry:
    """The job's planning view as the tree stands in ``session`` (whose transaction holds
    the job's row lock and finds every batch done): this process's kept view grown by the
    nodes landed since, or one built from the tree. The entry goes back to the cache when
    ``session`` commits, unless :func:`forget` is called first."""
    entry = cache.take(job.id)
    if entry is not None and not (entry.epoch == job.tree_epoch and entry.loaded <= job.step):
        entry = None
    if entry is not None:
        entry.added = 0
    if entry is not None and entry.loaded < job.step:
        raw = load_nodes_since(session, job.id, entry.loaded, job.step)
        placed = planning_additions(entry.tree, raw)
        try:
            if placed is None:
                raise ValueError("a thought's answer moves it out of the view")
            entry.tree.absorb(placed)
        except ValueError:
            entry = None  # a node the view holds changed: build it again
        else:
            entry.added = len(raw)
    if entry is not None:
        entry.source = "kept"
        if job.step != entry.planned:
            entry.last_best = None  # another process reported steps meanwhile
        cache.hits += 1
        metrics.planning_view("kept", entry.added)
    else:
        entry = PlanningEntry(
            job.id, job.tree_epoch, job.step, planning_view(load_tree(session, job.id))
        )
        if job.step == 0:
            entry.last_best = {}  # no step was reported yet: nothing to read back
        cache.builds += 1
        metrics.planning_view("built", len(entry.tree.nodes))
    entry.loaded = job.step
    _staged(session)[job.id] = (cache, entry)
    return entry


def forget(session: Session, job_id: str) -> None:
    """Keep no view of the job after this transaction (it finished, or the step changed
    nodes the view holds)."""
    _staged(session).pop(job_id, None)


_STAGED = "ttc_tree_cache"


def _staged(session: Session) -> dict[str, tuple[TreeCache, PlanningEntry]]:
    staged: dict[str, tuple[TreeCache, PlanningEntry]] = session.info.setdefault(_STAGED, {})
    return staged


@event.listens_for(Session, "after_commit")
def _keep_staged(session: Session) -> None:
    for cache, entry in session.info.pop(_STAGED, {}).values():
        cache.put(entry)


@event.listens_for(Session, "after_soft_rollback")
def _drop_staged(session: Session, previous_transaction: Any) -> None:
    session.info.pop(_STAGED, None)
