"""Sample: plain samples, no search (what an OpenAI client gets from a bare endpoint).

The first sample is the answer whatever its text: no verifier is needed to pick it, and a
reply with no extractable final answer (a poem, a summary) is still a reply. ``n`` > 1
draws more plain samples (OpenAI's ``n``); the ``answer`` and ``score`` of each are the
verifier's, as for any node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ttc_core.search.strategies.base import Plan, SamplingParams, Selection, Strategy
from ttc_core.search.strategies.sampling import plan_root_samples, usable_samples
from ttc_core.search.tree import TreeView


class SampleParams(SamplingParams):
    n: int = Field(default=1, ge=1, le=1024, description="plain samples to draw")


class Sample(Strategy[SampleParams]):
    name = "sample"
    summary = "plain samples, no search: the first is the answer"
    params_model = SampleParams

    def planned_samples(self, params: SampleParams) -> int:
        return params.n

    def plan(self, tree: TreeView, params: SampleParams, state: Mapping[str, Any]) -> Plan:
        return plan_root_samples(tree, params.n) or Plan(finish=self.select(tree, params))

    def select(self, tree: TreeView, params: SampleParams) -> Selection:
        samples = usable_samples(tree)
        if not samples:
            return Selection.failure("no sample could be generated")
        return Selection.of(samples[0])
