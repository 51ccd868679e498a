"""Tree-of-thoughts, breadth-first (Yao et al. 2023): at each depth propose ``k``
thoughts per state, value every new state (with the job's step scorer, typically the
LLM judge's "sure / likely / impossible" value prompt sampled several times), keep the
best ``breadth`` states."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ttc_core.strategies.base import Plan, Selection, Strategy
from ttc_core.strategies.level_search import plan_levels
from ttc_core.strategies.stepwise import StepSearchParams, select_terminal
from ttc_core.tree import TreeView


class TotBfsParams(StepSearchParams):
    k: int = Field(default=5, ge=1, le=256, description="thoughts proposed per state")
    breadth: int = Field(default=5, ge=1, le=256, description="states kept per depth (b)")
    max_depth: int = Field(default=4, ge=1, le=64)


class TotBfs(Strategy[TotBfsParams]):
    name = "tot_bfs"
    params_model = TotBfsParams
    needs_step_scorer = True

    def planned_samples(self, params: TotBfsParams) -> int:
        return params.k * params.breadth * params.max_depth

    def plan(self, tree: TreeView, params: TotBfsParams, state: Mapping[str, Any]) -> Plan:
        return plan_levels(tree, params, root_k=params.k, keep=params.breadth, k=params.k)

    def select(self, tree: TreeView, params: TotBfsParams) -> Selection:
        return select_terminal(tree, params.select)
