"""Think: one long thought, then the answer (extended thinking on its own).

The job thinks whether or not it names a ``thinking`` option (the defaults apply: no
minimum, the server's default cap). On an endpoint whose model thinks in visible
delimiters, budget forcing shapes the thought and the tree holds a ``think`` node with the
answer below it; elsewhere the endpoint's reasoning controls go with one request. This
strategy plans on the planning view (``ttc_core.engine.thinking.planning_view``), where the answer
stands in its thought's place, so it is a one-sample strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ttc_core.search.strategies.base import Plan, SamplingParams, Selection, Strategy
from ttc_core.search.strategies.sampling import plan_root_samples, usable_samples
from ttc_core.search.tree import TreeView


class ThinkParams(SamplingParams):
    """Sampling knobs of the answer (the thought's bounds are the job's ``thinking``)."""


class Think(Strategy[ThinkParams]):
    name = "think"
    summary = "one long thought (budget forcing), then the answer"
    params_model = ThinkParams
    thinks = True

    def plan(self, tree: TreeView, params: ThinkParams, state: Mapping[str, Any]) -> Plan:
        return plan_root_samples(tree, 1) or Plan(finish=self.select(tree, params))

    def select(self, tree: TreeView, params: ThinkParams) -> Selection:
        answered = [n for n in usable_samples(tree) if n.answer is not None]
        if not answered:
            return Selection.failure("the thought gave no answer")
        best = answered[0]
        return Selection.of(best, completion_tokens=best.completion_tokens)
