"""Tree-of-thoughts, depth-first (Yao et al. 2023): expand the most promising state with
``k`` proposals, go deeper through children whose value clears ``threshold`` (best
first), and backtrack when a subtree has none left. Stops at the first final answer whose
value clears the threshold, or after ``max_expansions``.

Sequential by nature: one state is expanded per step. The DFS position is derived from
the tree (expanded states have children), so the search resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def _next(tree: TreeView, node: NodeView, params: TotDfsParams) -> tuple[str, NodeView] | None:
    """Depth-first, best child first: a final answer to stop at, or a state to expand."""
    for child in sorted(tree.children(node.id), key=rank_key):
        if not child.usable or child.role != NodeRole.step:
            continue
        if child.score is None or child.score < params.threshold:
            continue  # pruned by value
        if child.is_terminal:
            return ("finish", child)
        if tree.children(child.id):
            found = _next(tree, child, params)
            if found is not None:
                return found
            continue  # backtrack
        if child.depth < params.max_depth:
            return ("expand", child)
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
        expanded = sum(
            1 for n in tree.nodes.values() if n.role == NodeRole.step and tree.children(n.id)
        )
        found = _next(tree, tree.root, params)
        if found is None or found[0] == "finish" or expanded + 1 >= params.max_expansions:
            return Plan(finish=self.select(tree, params))
        return Plan(expansions=[Expand(found[1].id, params.k, role=NodeRole.step)])

    def select(self, tree: TreeView, params: TotDfsParams) -> Selection:
        found = _next(tree, tree.root, params)
        if found is not None and found[0] == "finish":
            node = found[1]
            return Selection.of(node, path=[n.id for n in tree.path(node.id)], stopped="found")
        return select_terminal(tree, params.select)
