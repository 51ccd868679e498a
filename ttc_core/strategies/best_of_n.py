"""Best-of-N: N samples of the whole answer, keep the highest verifier score.

``weighted=True`` is *weighted best-of-N* (search-and-learn): sum the scores of samples
that share an extracted answer and pick the answer with the largest sum; the returned
node is that answer's best-scored sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ttc_core.strategies.base import Plan, SamplingParams, Selection, Strategy
from ttc_core.strategies.sampling import plan_root_samples, usable_samples
from ttc_core.strategies.voting import tally
from ttc_core.tree import TreeView


class BestOfNParams(SamplingParams):
    n: int = Field(default=16, ge=1, le=65_536, description="samples to draw")
    weighted: bool = Field(default=False, description="reward-weighted vote over answers")


class BestOfN(Strategy[BestOfNParams]):
    name = "best_of_n"
    params_model = BestOfNParams
    needs_scores = True

    def plan(self, tree: TreeView, params: BestOfNParams, state: Mapping[str, Any]) -> Plan:
        return plan_root_samples(tree, params.n) or Plan(finish=self.select(tree, params))

    def select(self, tree: TreeView, params: BestOfNParams) -> Selection:
        samples = [n for n in usable_samples(tree) if n.score is not None]
        if not samples:
            return Selection.failure("no sample was generated and scored")
        if params.weighted:
            votes = tally(samples, weighted=True)
            best_answer = votes.winner
            pool = [n for n in samples if n.answer == best_answer]
            best = max(pool, key=lambda n: (n.score, -n.child_index))
            return Selection.of(best, weights=votes.as_dict(), samples=len(samples))
        # Highest score; ties go to the earliest sample (deterministic).
        best = max(samples, key=lambda n: (n.score, -n.child_index))
        return Selection.of(best, samples=len(samples))
