"""Tree-of-thoughts, breadth-first (Yao et al. 2023): at each depth propose ``k``
thoughts per state, value every new state (with the job's step scorer, typically the
LLM judge's "sure / likely / impossible" value prompt sampled several times), keep the
best ``breadth`` states.

Duplicate states are dropped before the best ``breadth`` are kept, as in the reference
implementation (which values a duplicate at 0): of the open nodes at the deepest depth that
reach one state (``NodeView.state``: for Game of 24 the numbers left, see
:mod:`ttc_core.search.strategies.states`), only the best-ranked stays a candidate.
Otherwise the same move proposed twice fills two of the ``b`` places with one state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ttc_core.search.strategies.base import Expand, Plan, Selection, Strategy
from ttc_core.search.strategies.level_search import frontier
from ttc_core.search.strategies.stepwise import StepSearchParams, open_leaves, select_terminal
from ttc_core.search.tree import NodeRole, NodeView, TreeView


class TotBfsParams(StepSearchParams):
    k: int = Field(default=5, ge=1, le=256, description="thoughts proposed per state")
    breadth: int = Field(default=5, ge=1, le=256, description="states kept per depth (b)")
    max_depth: int = Field(default=4, ge=1, le=64)
    dedupe: bool = Field(
        default=True, description="keep one node per state (same numbers left / same path)"
    )


def _rank(node: NodeView) -> tuple[float, int, str, int]:
    """Best score first; ties by depth, parent and child index (deterministic)."""
    score = node.score if node.score is not None else float("-inf")
    return (-score, node.depth, node.parent_id or "", node.child_index)


def keep_states(
    candidates: list[NodeView], breadth: int, dedupe: bool
) -> tuple[list[NodeView], dict[str, dict[str, Any]]]:
    """The best ``breadth`` candidates, one per state if ``dedupe``, in the candidates' order;
    and the ``node_meta`` marking the others (``duplicate_of``: the kept or better-ranked node
    that reaches the same state)."""
    first_of: dict[str, str] = {}
    kept_ids: set[str] = set()
    meta: dict[str, dict[str, Any]] = {}
    for node in sorted(candidates, key=_rank):
        key = node.state if dedupe and node.state is not None else f"node:{node.id}"
        if key in first_of:
            meta[node.id] = {"dropped": True, "duplicate_of": first_of[key]}
            continue
        first_of[key] = node.id
        if len(kept_ids) < breadth:
            kept_ids.add(node.id)
        else:
            meta[node.id] = {"dropped": True}
    return [n for n in candidates if n.id in kept_ids], meta


class TotBfs(Strategy[TotBfsParams]):
    name = "tot_bfs"
    summary = "tree-of-thoughts BFS: k proposals per state, keep the best b per depth"
    params_model = TotBfsParams
    needs_step_scorer = True

    def planned_samples(self, params: TotBfsParams) -> int:
        # k proposals at depth 1, then at most `breadth` states expanded k times per depth.
        return params.k + params.k * params.breadth * (params.max_depth - 1)

    def plan(self, tree: TreeView, params: TotBfsParams, state: Mapping[str, Any]) -> Plan:
        if not tree.children(tree.root_id):
            return Plan(expansions=[Expand(tree.root_id, params.k, role=NodeRole.step)])
        candidates = open_leaves(frontier(tree))
        if not candidates:
            return Plan(finish=select_terminal(tree, params.select))
        kept, meta = keep_states(candidates, params.breadth, params.dedupe)
        return Plan(
            expansions=[Expand(n.id, params.k, role=NodeRole.step) for n in kept], node_meta=meta
        )

    def select(self, tree: TreeView, params: TotBfsParams) -> Selection:
        return select_terminal(tree, params.select)
