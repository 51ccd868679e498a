"""Step-level beam search with a process reward model (search-and-learn's definition).

The root is expanded ``n`` times by one step; at each depth the best ``n / beam_width``
paths by aggregated step score are kept and each is expanded ``beam_width`` times. A
path stops at a final answer or at ``max_depth``; the answer is the best finished path
(or a vote over them). With ``lookahead`` L > 0 a candidate is ranked by the score of
L further greedy steps (temperature 0), generated as ``lookahead`` nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ttc_core.search.strategies.base import Plan, Selection, Strategy
from ttc_core.search.strategies.level_search import plan_levels
from ttc_core.search.strategies.stepwise import BeamParams, select_terminal
from ttc_core.search.tree import TreeView


class BeamSearchParams(BeamParams):
    lookahead: int = Field(default=0, ge=0, le=8, description="greedy steps to rank by")


class BeamSearch(Strategy[BeamSearchParams]):
    name = "beam_search"
    summary = "step-level: N per depth, keep the best N/M by PRM score, expand each M times"
    params_model = BeamSearchParams
    needs_step_scorer = True

    def planned_samples(self, params: BeamSearchParams) -> int:
        return params.n * params.max_depth * (1 + params.lookahead)

    def plan(self, tree: TreeView, params: BeamSearchParams, state: Mapping[str, Any]) -> Plan:
        return plan_levels(
            tree,
            params,
            root_k=params.n,
            keep=params.n // params.beam_width,
            k=params.beam_width,
            lookahead=params.lookahead,
        )

    def select(self, tree: TreeView, params: BeamSearchParams) -> Selection:
        return select_terminal(tree, params.select)
