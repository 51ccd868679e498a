"""Self-consistency: N samples, majority vote over extracted, normalized final answers.

``weighted=True`` weights each vote by its verifier score (reward-weighted majority).
The returned node is the winning answer's first sample (or best-scored one if scored).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ttc_core.strategies.base import Plan, SamplingParams, Selection, Strategy
from ttc_core.strategies.sampling import plan_root_samples, usable_samples
from ttc_core.strategies.voting import tally
from ttc_core.tree import TreeView


class SelfConsistencyParams(SamplingParams):
    n: int = Field(default=16, ge=1, le=65_536, description="samples to vote over")
    weighted: bool = Field(default=False, description="weight votes by verifier score")


class SelfConsistency(Strategy[SelfConsistencyParams]):
    name = "self_consistency"
    params_model = SelfConsistencyParams

    def plan(self, tree: TreeView, params: SelfConsistencyParams, state: Mapping[str, Any]) -> Plan:
        return plan_root_samples(tree, params.n) or Plan(finish=self.select(tree, params))

    def select(self, tree: TreeView, params: SelfConsistencyParams) -> Selection:
        samples = usable_samples(tree)
        votes = tally(samples, weighted=params.weighted)
        if votes.winner is None:
            return Selection.failure("no sample had an extractable answer")
        pool = [n for n in samples if n.answer == votes.winner]
        best = min(pool, key=lambda n: (-(n.score or 0.0), n.child_index))
        share = votes.entries[0].count / max(1, sum(e.count for e in votes.entries))
        return Selection.of(
            best, votes=votes.as_dict(), agreement=round(share, 4), samples=len(samples)
        )
