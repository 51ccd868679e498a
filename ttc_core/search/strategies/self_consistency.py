"""Self-consistency: N samples, majority vote over extracted, normalized final answers.

``weighted=True`` weights each vote by its verifier score (reward-weighted majority).
The returned node is the winning answer's first sample (or best-scored one if scored).

``adaptive`` (:mod:`ttc_core.search.strategies.adaptive`) samples in rounds of ``batch`` and stops
as soon as the posterior that the leader stays the leader reaches ``confidence``; ``n`` is
then the most samples it may draw. The stop is recorded as an ``adaptive_stop`` event and
in ``result.details.adaptive``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ttc_core.search.strategies.adaptive import AdaptiveParams, StopDecision, decide
from ttc_core.search.strategies.base import Expand, Plan, SamplingParams, Selection, Strategy
from ttc_core.search.strategies.sampling import plan_root_samples, usable_samples
from ttc_core.search.strategies.voting import tally
from ttc_core.search.tree import TreeView


class SelfConsistencyParams(SamplingParams):
    n: int = Field(default=16, ge=1, le=65_536, description="samples to vote over")
    weighted: bool = Field(default=False, description="weight votes by verifier score")
    adaptive: AdaptiveParams | None = Field(
        default=None, description="stop early once the vote is settled; n is the maximum"
    )


class SelfConsistency(Strategy[SelfConsistencyParams]):
    name = "self_consistency"
    summary = "N samples, majority vote over extracted, normalized answers"
    params_model = SelfConsistencyParams

    def planned_samples(self, params: SelfConsistencyParams) -> int:
        return params.n

    def plan(self, tree: TreeView, params: SelfConsistencyParams, state: Mapping[str, Any]) -> Plan:
        if params.adaptive is None:
            return plan_root_samples(tree, params.n) or Plan(finish=self.select(tree, params))
        return plan_adaptive(self, tree, params, params.adaptive)

    def select(self, tree: TreeView, params: SelfConsistencyParams) -> Selection:
        samples = usable_samples(tree)
        votes = tally(samples, weighted=params.weighted)
        if votes.winner is None:
            return Selection.failure("no sample had an extractable answer")
        pool = [n for n in samples if n.answer == votes.winner]
        best = min(pool, key=lambda n: (-(n.score or 0.0), n.child_index))
        share = votes.entries[0].count / max(1, sum(e.count for e in votes.entries))
        details: dict[str, Any] = {
            "votes": votes.as_dict(),
            "agreement": round(share, 4),
            "samples": len(samples),
        }
        if params.adaptive is not None:
            details["adaptive"] = stop_decision(tree, params.adaptive).as_dict()
        return Selection.of(best, **details)


def stop_decision(tree: TreeView, adaptive: AdaptiveParams) -> StopDecision:
    """The stopping rule applied to the root's samples as they stand (unweighted counts)."""
    votes = tally(usable_samples(tree))
    counts = {e.answer: e.count for e in votes.entries}
    return decide(counts, len(tree.children(tree.root_id)), adaptive)


def plan_adaptive(
    strategy: Strategy[Any], tree: TreeView, params: Any, adaptive: AdaptiveParams
) -> Plan:
    """One round of adaptive sampling at the root: up to ``min_samples`` first, then
    ``batch`` more while the vote is unsettled and fewer than ``params.n`` were drawn."""
    have = len(tree.children(tree.root_id))
    first = min(adaptive.min_samples, params.n)
    if have < first:
        return Plan(expansions=[Expand(tree.root_id, first - have)])
    decision = stop_decision(tree, adaptive)
    if not decision.settled and have < params.n:
        return Plan(expansions=[Expand(tree.root_id, min(adaptive.batch, params.n - have))])
    why = "posterior" if decision.settled else "max_samples"
    event = {**decision.as_dict(), "stopped_by": why, "max_samples": params.n}
    return Plan(finish=strategy.select(tree, params), events=[("adaptive_stop", event)])
