"""Tree-of-thoughts, depth-first (Yao et al. 2023): expand the most promising state with
``k`` proposals, go deeper through children whose value clears ``threshold`` (best
first), and backtrack when a subtree has none left. Stops at the first final answer whose
value clears the threshold, or after ``max_expansions``.

Sequential by nature: one state is expanded per step. The DFS position is derived from
the tree (expanded states have children), so the search resumes where it stopped. The
subtrees the search has backtracked out of are remembered in an index of the tree
(:class:`Backtracked`) until nodes land in them, so that a step walks the path to the
current state, not every state expanded so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from ttc_core.search.strategies.base import Expand, Plan, Selection, Strategy
from ttc_core.search.strategies.stepwise import StepSearchParams, rank_key, select_terminal
from ttc_core.search.tree import NodeRole, NodeView, TreeView


class TotDfsParams(StepSearchParams):
    k: int = Field(default=5, ge=1, le=256, description="thoughts proposed per state")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="prune below this value")
    max_expansions: int = Field(default=50, ge=1, le=10_000)
    max_depth: int = Field(default=4, ge=1, le=64)


@dataclass
class Backtracked:
    """What the DFS knows of the tree: the nodes whose subtree holds nothing left to
    expand or finish at (a memo of :func:`_next`, a function of the subtree alone, so it
    holds until nodes land below), and how many states have been expanded."""

    exhausted: set[str] = field(default_factory=set)
    expanded: int = 0

    @classmethod
    def build(cls, tree: TreeView) -> Backtracked:
        return cls(expanded=sum(1 for n in tree.nodes.values() if _expanded(tree, n)))

    def absorb(self, tree: TreeView, added: Sequence[NodeView]) -> None:
        new = {n.id for n in added}
        for parent_id in {n.parent_id for n in added if n.parent_id is not None} - new:
            parent = tree.nodes[parent_id]
            if _expanded(tree, parent) and all(c.id in new for c in tree.children(parent_id)):
                self.expanded += 1
            node: NodeView | None = parent
            while node is not None:  # a subtree that grew may hold something again
                self.exhausted.discard(node.id)
                node = tree.parent(node)
        self.expanded += sum(1 for n in added if _expanded(tree, n))


def _expanded(tree: TreeView, node: NodeView) -> bool:
    return node.role == NodeRole.step and bool(tree.children(node.id))


def _backtracked(tree: TreeView, params: TotDfsParams) -> Backtracked:
    return tree.index(("tot_dfs", params.threshold, params.max_depth), Backtracked.build)


def _next(
    tree: TreeView, node: NodeView, params: TotDfsParams, memo: Backtracked
) -> tuple[str, NodeView] | None:
    """Depth-first, best child first: a final answer to stop at, or a state to expand."""
    if node.id in memo.exhausted:
        return None
    for child in sorted(tree.children(node.id), key=rank_key):
        if not child.usable or child.role != NodeRole.step:
            continue
        if child.score is None or child.score < params.threshold:
            continue  # pruned by value
        if child.is_terminal:
            return ("finish", child)
        if tree.children(child.id):
            found = _next(tree, child, params, memo)
            if found is not None:
                return found
            continue  # backtrack
        if child.depth < params.max_depth:
            return ("expand", child)
    memo.exhausted.add(node.id)
    return None


class TotDfs(Strategy[TotDfsParams]):
    name = "tot_dfs"
    summary = "tree-of-thoughts DFS: best child first, prune below threshold, backtrack"
    params_model = TotDfsParams
    needs_step_scorer = True

    def planned_samples(self, params: TotDfsParams) -> int:
        return params.k * params.max_expansions

    def plan(self, tree: TreeView, params: TotDfsParams, state: Mapping[str, Any]) -> Plan:
        if not tree.children(tree.root_id):
            return Plan(expansions=[Expand(tree.root_id, params.k, role=NodeRole.step)])
        memo = _backtracked(tree, params)
        expanded = memo.expanded
        found = _next(tree, tree.root, params, memo)
        if found is None or found[0] == "finish" or expanded + 1 >= params.max_expansions:
            return Plan(finish=self.select(tree, params))
        return Plan(expansions=[Expand(found[1].id, params.k, role=NodeRole.step)])

    def select(self, tree: TreeView, params: TotDfsParams) -> Selection:
        found = _next(tree, tree.root, params, _backtracked(tree, params))
        if found is not None and found[0] == "finish":
            node = found[1]
            return Selection.of(node, path=[n.id for n in tree.path(node.id)], stopped="found")
        return select_terminal(tree, params.select)
