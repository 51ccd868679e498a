"""Monte Carlo tree search over reasoning steps, expanded in parallel.

Each simulation selects a leaf by UCT (Q + c·√(ln N_parent / N_child)), expands it with
``k`` step samples, and evaluates every new node with the job's step scorer (a PRM value
of the path). Back-propagation is derived from the tree itself: a node's visit count N is
the number of evaluated nodes in its subtree and W the sum of their values, so the
statistics survive restarts with nothing else persisted. ``parallel`` simulations are
planned per step with a virtual loss on the paths already chosen, so that they spread over
the tree and run at once on many workers. Visit counts and Q values are written to the
nodes' ``meta`` when the search ends. If the simulation budget ends before any path
reached a final answer, the highest-Q path is completed greedily (one child per step).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from ttc_core.search.strategies.base import Expand, Plan, Selection, Strategy
from ttc_core.search.strategies.stepwise import StepSearchParams, select_terminal, step_terminals
from ttc_core.search.tree import NodeRole, NodeView, TreeView


class MctsParams(StepSearchParams):
    simulations: int = Field(default=32, ge=1, le=100_000, description="expansions in all")
    k: int = Field(default=4, ge=1, le=256, description="children per expansion")
    c: float = Field(default=1.4, ge=0.0, le=100.0, description="UCT exploration constant")
    parallel: int = Field(default=4, ge=1, le=256, description="simulations in flight")
    virtual_loss: float = Field(default=1.0, ge=0.0, le=100.0)


def _counted(node: NodeView) -> bool:
    """Whether a node's statistics count in its parent's (a usable step)."""
    return node.usable and node.role == NodeRole.step


#: Values are summed as integers of this many parts per unit: exact, so W does not depend
#: on the order nodes arrived in, and a view rebuilt after a restart plans as the one grown
#: step by step did (float sums differ in their last bits, and UCT ties break on them).
_TICKS = 2**60


def _ticks(score: float) -> int:
    return round(score * _TICKS)


@dataclass
class Stats:
    """N, W and "has an expandable leaf below" for every node, and how many nodes have
    been expanded. An index of the tree (:meth:`TreeView.index`): built once, then kept up
    to date as nodes arrive, so that a step costs the nodes it adds and the paths above
    them, not the tree."""

    max_depth: int
    visits: dict[str, int]
    value_sum: dict[str, float]
    open_below: dict[str, bool]
    #: Nodes with at least one child (of any kind or status): simulations done.
    expanded: int = 0
    #: W exactly, in ``_TICKS`` (``value_sum`` is it as a float).
    value_ticks: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, tree: TreeView, max_depth: int) -> Stats:
        stats = cls(max_depth, {}, {}, {})
        for node in sorted(tree.nodes.values(), key=lambda n: -n.depth):
            stats._recount(tree, node)
            stats._reopen(tree, node)
        stats.expanded = sum(1 for node_id in tree.nodes if tree.children(node_id))
        return stats

    def _own(self, node: NodeView) -> tuple[int, int]:
        scored = node.parent_id is not None and node.usable and node.score is not None
        return (1, _ticks(node.score or 0.0)) if scored else (0, 0)

    def _set(self, node_id: str, visits: int, ticks: int) -> None:
        self.visits[node_id] = visits
        self.value_ticks[node_id] = ticks
        self.value_sum[node_id] = ticks / _TICKS

    def _recount(self, tree: TreeView, node: NodeView) -> None:
        """N and W of ``node`` from its own score and its children's (already known)."""
        visits, ticks = self._own(node)
        for kid in tree.children(node.id):
            if _counted(kid):
                visits += self.visits[kid.id]
                ticks += self.value_ticks[kid.id]
        self._set(node.id, visits, ticks)

    def _reopen(self, tree: TreeView, node: NodeView) -> bool:
        """``open_below`` of ``node`` from its children's; True when it changed."""
        kids = [c for c in tree.children(node.id) if _counted(c)]
        leaf_open = (
            not kids
            and node.usable
            and not node.is_terminal
            and node.depth < self.max_depth
            and (node.role == NodeRole.step or node.parent_id is None)
        )
        value = leaf_open or any(self.open_below[c.id] for c in kids)
        changed = self.open_below.get(node.id) != value
        self.open_below[node.id] = value
        return changed

    def absorb(self, tree: TreeView, added: Sequence[NodeView]) -> None:
        new = {n.id for n in added}
        # The new subtrees' own statistics, bottom-up (every node below a new one is new).
        for node in sorted(added, key=lambda n: -n.depth):
            self._recount(tree, node)
            self._reopen(tree, node)
        tops = [n for n in added if n.parent_id not in new]
        parents = {n.parent_id for n in added if n.parent_id is not None}
        self.expanded += sum(1 for p in parents if all(c.id in new for c in tree.children(p)))
        # Back-propagation: each new subtree's N and W go up while a node counts in its
        # parent's; "open below" is recomputed on the paths above, deepest first.
        above: dict[str, NodeView] = {}
        for top in tops:
            visits, ticks = self.visits[top.id], self.value_ticks[top.id]
            at: NodeView | None = top
            while at is not None and at.parent_id is not None:
                parent = tree.nodes[at.parent_id]
                if _counted(at) and (visits or ticks):
                    self._set(
                        parent.id,
                        self.visits[parent.id] + visits,
                        self.value_ticks[parent.id] + ticks,
                    )
                above[parent.id] = parent
                at = parent if _counted(at) else None
        for ancestor in sorted(above.values(), key=lambda n: -n.depth):
            self._reopen(tree, ancestor)


def tree_stats(tree: TreeView, max_depth: int) -> Stats:
    """N, W and "has an expandable leaf below" for every node, from scratch."""
    return Stats.build(tree, max_depth)


def stats_of(tree: TreeView, max_depth: int) -> Stats:
    """The tree's :class:`Stats` index (kept as nodes arrive; read it, never change it)."""
    return tree.index(("mcts", max_depth), lambda t: Stats.build(t, max_depth))


def select_leaves(tree: TreeView, params: MctsParams, stats: Stats, count: int) -> list[NodeView]:
    """Up to ``count`` distinct leaves by UCT, with virtual loss on chosen paths. Reads
    ``stats`` only: the subtrees this selection closes are kept apart."""
    extra: dict[str, float] = {}
    closed: dict[str, bool] = {}  # open_below as this selection changes it
    chosen: list[NodeView] = []
    taken: set[str] = set()

    def is_open(node_id: str) -> bool:
        return closed.get(node_id, stats.open_below[node_id])

    for _ in range(count):
        node = tree.root
        while True:
            kids = [
                c
                for c in tree.children(node.id)
                if c.usable and c.role == NodeRole.step and is_open(c.id) and c.id not in taken
            ]
            if not kids:
                break
            parent_n = stats.visits[node.id] + extra.get(node.id, 0.0)

            def uct(c: NodeView, parent_n: float = parent_n) -> tuple[float, int]:
                n = stats.visits[c.id] + extra.get(c.id, 0.0)
                q = stats.value_sum[c.id] / n if n else 0.0
                explore = params.c * math.sqrt(math.log(max(parent_n, 1.0)) / n) if n else 1e9
                return (q + explore, -c.child_index)

            node = max(kids, key=uct)
        expanded = any(c.usable and c.role == NodeRole.step for c in tree.children(node.id))
        if node.id in taken or expanded or not is_open(node.id):
            break  # nothing left to expand (a leaf whose children all failed is retried)
        chosen.append(node)
        taken.add(node.id)
        path = tree.path(node.id)
        for on_path in path:
            extra[on_path.id] = extra.get(on_path.id, 0.0) + params.virtual_loss
        # A closed subtree (every leaf taken) must not attract the next selection.
        closed[node.id] = False
        for ancestor in reversed(path[:-1]):
            closed[ancestor.id] = any(
                is_open(c.id) and c.id not in taken
                for c in tree.children(ancestor.id)
                if c.usable and c.role == NodeRole.step
            )
    return chosen


def best_path_tip(tree: TreeView, stats: Stats) -> NodeView | None:
    """Follow the highest-Q child from the root; the open leaf it ends at, if any."""
    node = tree.root
    while True:
        kids = [
            c
            for c in tree.children(node.id)
            if c.usable and c.role == NodeRole.step and stats.open_below[c.id]
        ]
        if not kids:
            break
        node = max(
            kids, key=lambda c: (stats.value_sum[c.id] / max(1, stats.visits[c.id]), -c.child_index)
        )
    expanded = any(c.usable and c.role == NodeRole.step for c in tree.children(node.id))
    if node.parent_id is None or expanded or not stats.open_below[node.id]:
        return None
    return node


def completion_tip(tree: TreeView, stats: Stats, state: Mapping[str, Any]) -> NodeView | None:
    """Where the greedy completion goes on: down the one path it started from (one child
    per step), so that it finishes that path in at most ``max_depth - 1`` steps instead of
    turning to another whenever the Q values move; :func:`best_path_tip` picks the start."""
    node = tree.nodes.get(str(state.get(COMPLETING, "")))
    if node is None:
        return best_path_tip(tree, stats)
    while kids := [c for c in tree.children(node.id) if c.usable and c.role == NodeRole.step]:
        node = max(kids, key=lambda c: c.child_index)
    return None if node.is_terminal else node


#: Strategy state: the node the greedy completion of the best path started from.
COMPLETING = "completing_from"


class Mcts(Strategy[MctsParams]):
    name = "mcts"
    summary = "UCT selection, k-sample expansion, PRM value, parallel with virtual loss"
    params_model = MctsParams
    needs_step_scorer = True

    def planned_samples(self, params: MctsParams) -> int:
        # k per simulation, and the greedy completion of the best path (one step per
        # depth) when the simulations end before any path reached an answer.
        return params.k * params.simulations + params.max_depth - 1

    def plan(self, tree: TreeView, params: MctsParams, state: Mapping[str, Any]) -> Plan:
        if not tree.children(tree.root_id):
            return Plan(expansions=[Expand(tree.root_id, params.k, role=NodeRole.step)])
        stats = stats_of(tree, params.max_depth)
        left = params.simulations - stats.expanded
        leaves = select_leaves(tree, params, stats, min(params.parallel, left)) if left > 0 else []
        if leaves:
            return Plan(
                expansions=[Expand(leaf.id, params.k, role=NodeRole.step) for leaf in leaves]
            )
        if not step_terminals(tree):
            # The budget ended before any path finished: complete the best path greedily.
            tip = completion_tip(tree, stats, state)
            if tip is not None:
                start = state.get(COMPLETING) or tip.id
                return Plan(
                    expansions=[Expand(tip.id, 1, role=NodeRole.step)],
                    state={**state, COMPLETING: start},
                )
        return self._finish(tree, params)

    def _finish(self, tree: TreeView, params: MctsParams) -> Plan:
        stats = stats_of(tree, params.max_depth)
        meta = {
            n.id: {
                "visits": stats.visits[n.id],
                "q": round(stats.value_sum[n.id] / stats.visits[n.id], 6)
                if stats.visits[n.id]
                else None,
            }
            for n in tree.nodes.values()
            if n.role == NodeRole.step or n.parent_id is None
        }
        return Plan(finish=self.select(tree, params), node_meta=meta)

    def select(self, tree: TreeView, params: MctsParams) -> Selection:
        return select_terminal(tree, params.select)
