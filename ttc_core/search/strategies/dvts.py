"""Diverse verifier tree search (search-and-learn): ``n / beam_width`` independent
subtrees. The root gets ``n`` first steps, taken as ``n / beam_width`` groups of
``beam_width`` (one group per subtree); each subtree keeps its best candidate, expands it
``beam_width`` times, and greedily continues from its best child (by step score) until a
final answer or ``max_depth``. The answer is the best across subtrees (or a vote over
their final nodes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ttc_core.search.strategies.base import Expand, Plan, Selection, Strategy
from ttc_core.search.strategies.stepwise import BeamParams, rank_key, select_terminal
from ttc_core.search.tree import NodeRole, NodeView, TreeView


class DvtsParams(BeamParams):
    """``n`` first steps in ``n / beam_width`` subtrees of ``beam_width`` candidates."""


def greedy_tip(tree: TreeView, node: NodeView) -> NodeView:
    """Follow the best child from ``node`` down to the last node of its greedy path."""
    while True:
        kids = [c for c in tree.children(node.id) if c.usable and c.role == NodeRole.step]
        if not kids:
            return node
        node = min(kids, key=rank_key)


class Dvts(Strategy[DvtsParams]):
    name = "dvts"
    summary = "N/M independent subtrees, each greedily keeps its best child (PRM)"
    params_model = DvtsParams
    needs_step_scorer = True

    def planned_samples(self, params: DvtsParams) -> int:
        return params.n * params.max_depth

    def plan(self, tree: TreeView, params: DvtsParams, state: Mapping[str, Any]) -> Plan:
        if not tree.children(tree.root_id):
            return Plan(expansions=[Expand(tree.root_id, params.n, role=NodeRole.step)])
        expansions = []
        for tip in subtree_tips(tree, params):
            if not tip.is_terminal and tip.depth < params.max_depth:
                expansions.append(Expand(tip.id, params.beam_width, role=NodeRole.step))
        if expansions:
            return Plan(expansions=expansions)
        return Plan(finish=self.select(tree, params))

    def select(self, tree: TreeView, params: DvtsParams) -> Selection:
        finals = [n for n in subtree_tips(tree, params) if n.is_terminal]
        return select_terminal(tree, params.select, finals)


def subtree_tips(tree: TreeView, params: DvtsParams) -> list[NodeView]:
    """The current greedy tip of each subtree (root children grouped by ``beam_width``)."""
    first = [c for c in tree.children(tree.root_id) if c.role == NodeRole.step]
    tips = []
    for group in range(params.n // params.beam_width):
        members = [
            c
            for c in first
            if group * params.beam_width <= c.child_index < (group + 1) * params.beam_width
            and c.usable
        ]
        if members:
            tips.append(greedy_tip(tree, min(members, key=rank_key)))
    return tips
