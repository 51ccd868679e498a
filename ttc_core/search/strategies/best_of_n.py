"""Best-of-N: N samples of the whole answer, keep the highest verifier score.

``weighted=True`` is *weighted best-of-N* (search-and-learn): sum the scores of samples
that share an extracted answer and pick the answer with the largest sum; the returned
node is that answer's best-scored sample.

``stop_on_pass=True`` (verifiers with a reference or unit tests) samples in rounds of
``batch`` and stops at the first round in which a sample passes (``correct``); ``n`` is
then the most samples drawn. The stop is an ``adaptive_stop`` event and
``result.details.adaptive``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ttc_core.search.strategies.base import Expand, Plan, SamplingParams, Selection, Strategy
from ttc_core.search.strategies.sampling import plan_root_samples, usable_samples
from ttc_core.search.strategies.voting import tally
from ttc_core.search.tree import NodeView, TreeView


class BestOfNParams(SamplingParams):
    n: int = Field(default=16, ge=1, le=65_536, description="samples to draw")
    weighted: bool = Field(default=False, description="reward-weighted vote over answers")
    stop_on_pass: bool = Field(
        default=False, description="stop once a sample passes the verifier (reference, tests)"
    )
    batch: int = Field(default=4, ge=1, le=1024, description="samples per round (stop_on_pass)")


class BestOfN(Strategy[BestOfNParams]):
    name = "best_of_n"
    summary = "N samples, the highest verifier score wins (weighted: reward-weighted vote)"
    params_model = BestOfNParams
    needs_scores = True

    def planned_samples(self, params: BestOfNParams) -> int:
        return params.n

    def plan(self, tree: TreeView, params: BestOfNParams, state: Mapping[str, Any]) -> Plan:
        if not params.stop_on_pass:
            return plan_root_samples(tree, params.n) or Plan(finish=self.select(tree, params))
        have = len(tree.children(tree.root_id))
        passed = _passing(tree)
        if not passed and have < params.n:
            return Plan(expansions=[Expand(tree.root_id, min(params.batch, params.n - have))])
        event = {
            "rule": "verifier_pass",
            "samples": have,
            "passed": len(passed),
            "stopped_by": "pass" if passed else "max_samples",
            "max_samples": params.n,
        }
        return Plan(finish=self.select(tree, params), events=[("adaptive_stop", event)])

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
        if params.stop_on_pass:
            passed = _passing(tree)
            if passed:  # a passing sample wins over a higher-scored one that fails
                best = passed[0]
            adaptive = {"rule": "verifier_pass", "passed": len(passed)}
            return Selection.of(best, samples=len(samples), adaptive=adaptive)
        return Selection.of(best, samples=len(samples))


def _passing(tree: TreeView) -> list[NodeView]:
    return [n for n in usable_samples(tree) if n.correct is True]
