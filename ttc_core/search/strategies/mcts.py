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

from ttc_core.search.strategies.base import Expand, Plan, Selection, Strategy
from ttc_core.search.strategies.stepwise import StepSearchParams, select_terminal
from ttc_core.search.tree import NodeRole, NodeView, TreeView


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
    """N, W and "has an expandable leaf below" for every node, bottom-up."""
    visits: dict[str, int] = {}
    value_sum: dict[str, float] = {}
    open_below: dict[str, bool] = {}
    for node in sorted(tree.nodes.values(), key=lambda n: -n.depth):
        kids = [c for c in tree.children(node.id) if c.usable and c.role == NodeRole.step]
        scored = node.parent_id is not None and node.usable and node.score is not None
        visits[node.id] = int(scored) + sum(visits[c.id] for c in kids)
        value_sum[node.id] = (node.score or 0.0 if scored else 0.0) + sum(
            value_sum[c.id] for c in kids
        )
        leaf_open = (
            not kids
            and node.usable
            and not node.is_terminal
            and node.depth < max_depth
            and (node.role == NodeRole.step or node.parent_id is None)
        )
        open_below[node.id] = leaf_open or any(open_below[c.id] for c in kids)
    return Stats(visits, value_sum, open_below)


def select_leaves(tree: TreeView, params: MctsParams, stats: Stats, count: int) -> list[NodeView]:
    """Up to ``count`` distinct leaves by UCT, with virtual loss on chosen paths."""
    extra: dict[str, float] = {}
    chosen: list[NodeView] = []
    taken: set[str] = set()
    for _ in range(count):
        node = tree.root
        while True:
            kids = [
                c
                for c in tree.children(node.id)
                if c.usable
                and c.role == NodeRole.step
                and stats.open_below[c.id]
                and c.id not in taken
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
        if node.id in taken or expanded or not stats.open_below[node.id]:
            break  # nothing left to expand (a leaf whose children all failed is retried)
        chosen.append(node)
        taken.add(node.id)
        for on_path in tree.path(node.id):
            extra[on_path.id] = extra.get(on_path.id, 0.0) + params.virtual_loss
        # A closed subtree (every leaf taken) must not attract the next selection.
        stats.open_below[node.id] = False
        for ancestor in reversed(tree.path(node.id)[:-1]):
            stats.open_below[ancestor.id] = any(
                stats.open_below[c.id] and c.id not in taken
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
        done = sum(1 for n in tree.nodes.values() if tree.children(n.id))
        left = params.simulations - done
        stats = tree_stats(tree, params.max_depth)
        leaves = select_leaves(tree, params, stats, min(params.parallel, left)) if left > 0 else []
        if leaves:
            return Plan(
                expansions=[Expand(leaf.id, params.k, role=NodeRole.step) for leaf in leaves]
            )
        if not any(n.role == NodeRole.step for n in tree.terminals()):
            # The budget ended before any path finished: complete the best path greedily.
            tip = completion_tip(tree, tree_stats(tree, params.max_depth), state)
            if tip is not None:
                start = state.get(COMPLETING) or tip.id
                return Plan(
                    expansions=[Expand(tip.id, 1, role=NodeRole.step)],
                    state={**state, COMPLETING: start},
                )
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
