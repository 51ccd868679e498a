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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from ttc_core.strategies.base import Expand, Plan, Selection, Strategy
from ttc_core.strategies.stepwise import StepSearchParams, select_terminal
from ttc_core.tree import NodeRole, NodeView, TreeView


class MctsParams(StepSearchParams):
    simulations: int = Field(default=32, ge=1, le=10_000, description="expansions in all")
    k: int = Field(default=4, ge=1, le=256, description="children per expansion")
    c: float = Field(default=1.4, ge=0.0, le=100.0, description="UCT exploration constant")
    parallel: int = Field(default=4, ge=1, le=256, description="simulations in flight")
    virtual_loss: float = Field(default=1.0, ge=0.0, le=100.0)


@dataclass
class Stats:
    visits: dict[str, int]
    value_sum: dict[str, float]
    open_below: dict[str, bool]


def tree_stats(tree: TreeView, max_depth: int) -> Stats:
    """N, W and "has an expandable leaf below" for every node. Kept with the view
    (``tree.memo``) and brought up to date with the nodes that landed since, so that a step
    costs O(new nodes x depth), not O(tree); :func:`full_stats` is the definition (and the
    rebuild after a crash or in another process). Callers must not change the result."""
    key = ("mcts.stats", max_depth)
    kept = tree.memo.get(key)
    if isinstance(kept, tuple):
        version, stats = kept
        if _catch_up(tree, stats, tree.changes_since(version), max_depth):
            tree.memo[key] = (tree.version, stats)
            return stats
    stats = full_stats(tree, max_depth)
    tree.memo[key] = (tree.version, stats)
    return stats


def full_stats(tree: TreeView, max_depth: int) -> Stats:
    """N, W and "has an expandable leaf below" for every node, bottom-up."""
    visits: dict[str, int] = {}
    value_sum: dict[str, float] = {}
    open_below: dict[str, bool] = {}
    for node in sorted(tree.nodes.values(), key=lambda n: -n.depth):
        kids = _step_children(tree, node)
        scored = _scored(node)
        visits[node.id] = int(scored) + sum(visits[c.id] for c in kids)
        value_sum[node.id] = (node.score or 0.0 if scored else 0.0) + sum(
            value_sum[c.id] for c in kids
        )
        open_below[node.id] = _leaf_open(node, kids, max_depth) or any(
            open_below[c.id] for c in kids
        )
    return Stats(visits, value_sum, open_below)


def _step_children(tree: TreeView, node: NodeView) -> list[NodeView]:
    return [c for c in tree.children(node.id) if c.usable and c.role == NodeRole.step]


def _scored(node: NodeView) -> bool:
    return node.parent_id is not None and node.usable and node.score is not None


def _leaf_open(node: NodeView, kids: list[NodeView], max_depth: int) -> bool:
    return (
        not kids
        and node.usable
        and not node.is_terminal
        and node.depth < max_depth
        and (node.role == NodeRole.step or node.parent_id is None)
    )


def _catch_up(
    tree: TreeView,
    stats: Stats,
    changes: list[tuple[NodeView | None, NodeView]],
    max_depth: int,
) -> bool:
    """Apply new nodes (and nodes that became usable) to ``stats``; False when a change
    is of another kind (a node cut or rescored), which a full recount handles."""
    for before, node in changes:
        if before is not None and (before.usable or tree.children(node.id)):
            return False
        stats.visits[node.id] = 0
        stats.value_sum[node.id] = 0.0
        stats.open_below[node.id] = False
        if _scored(node):
            current: NodeView | None = node
            while current is not None:
                stats.visits[current.id] += 1
                stats.value_sum[current.id] += node.score or 0.0
                if not (current.usable and current.role == NodeRole.step):
                    break
                current = tree.parent(current)
        # Openness flows up from the node while it changes something.
        current = node
        while current is not None:
            kids = _step_children(tree, current)
            value = _leaf_open(current, kids, max_depth) or any(
                stats.open_below.get(c.id, False) for c in kids
            )
            if current is not node and stats.open_below.get(current.id) == value:
                break
            stats.open_below[current.id] = value
            current = tree.parent(current)
    return True


def select_leaves(tree: TreeView, params: MctsParams, stats: Stats, count: int) -> list[NodeView]:
    """Up to ``count`` distinct leaves by UCT, with virtual loss on chosen paths."""
    extra: dict[str, float] = {}
    chosen: list[NodeView] = []
    taken: set[str] = set()
    # Subtrees closed by this step's choices; ``stats`` itself is shared and stays as is.
    closed: dict[str, bool] = {}

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
        for on_path in tree.path(node.id):
            extra[on_path.id] = extra.get(on_path.id, 0.0) + params.virtual_loss
        # A closed subtree (every leaf taken) must not attract the next selection.
        closed[node.id] = False
        for ancestor in reversed(tree.path(node.id)[:-1]):
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


class Mcts(Strategy[MctsParams]):
    name = "mcts"
    params_model = MctsParams
    needs_step_scorer = True

    def planned_samples(self, params: MctsParams) -> int:
        return params.k * params.simulations

    def plan(self, tree: TreeView, params: MctsParams, state: Mapping[str, Any]) -> Plan:
        if not tree.children(tree.root_id):
            return Plan(expansions=[Expand(tree.root_id, params.k, role=NodeRole.step)])
        done = tree.expanded_count
        left = params.simulations - done
        stats = tree_stats(tree, params.max_depth)
        leaves = select_leaves(tree, params, stats, min(params.parallel, left)) if left > 0 else []
        if leaves:
            return Plan(
                expansions=[Expand(leaf.id, params.k, role=NodeRole.step) for leaf in leaves]
            )
        if not any(n.role == NodeRole.step for n in tree.terminals()):
            # The budget ended before any path finished: complete the best path greedily.
            tip = best_path_tip(tree, tree_stats(tree, params.max_depth))
            if tip is not None:
                return Plan(expansions=[Expand(tip.id, 1, role=NodeRole.step)])
        return self._finish(tree, params)

    def _finish(self, tree: TreeView, params: MctsParams) -> Plan:
        stats = tree_stats(tree, params.max_depth)
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
