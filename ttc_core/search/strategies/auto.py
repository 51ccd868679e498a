"""``auto``: probe, estimate difficulty, then run what the policy says on the same tree.

The first ``policy.probe`` children of the root are whole-answer samples; their agreement
(or mean score) gives the difficulty (:mod:`ttc_core.search.auto`), and the policy's band for it
names the strategy, parameters and token budget that continue. The decision is derived
from the probe samples alone, so it is the same every time the tree is read (a resumed
job, a budget that ends it, ``select``): nothing about it has to be trusted to state.
Flat sampling strategies continue on the probe's samples (self-consistency votes over
them, best-of-N ranks them); step-level ones search from the root beside them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ttc_core.search.auto import DEFAULT_POLICY, AutoPolicy, Band, Probe, explain, measure
from ttc_core.search.strategies.base import Expand, Plan, SamplingParams, Selection, Strategy
from ttc_core.search.tree import TreeView


class AutoParams(SamplingParams):
    policy: AutoPolicy | None = Field(
        default=None, description="difficulty bands; the server's auto_policy when absent"
    )


class Auto(Strategy[AutoParams]):
    """Runs other strategies by name: the registry that holds it is handed to it (the
    registry imports this module, never the other way round)."""

    name = "auto"
    summary = "probe the difficulty, then run the policy's strategy for its band"
    params_model = AutoParams

    def __init__(self, registry: Mapping[str, Strategy[Any]]) -> None:
        self._registry = registry

    def planned_samples(self, params: AutoParams) -> int:
        policy = params.policy or DEFAULT_POLICY
        registry = self._registry
        most = 0
        for band in policy.bands:
            inner = registry[band.strategy]
            most = max(most, inner.planned_samples(inner.parse_params(band.params)))
        return policy.probe + most

    def plan(self, tree: TreeView, params: AutoParams, state: Mapping[str, Any]) -> Plan:
        policy = params.policy or DEFAULT_POLICY
        have = len(tree.children(tree.root_id))
        if have < policy.probe:
            return Plan(expansions=[Expand(tree.root_id, policy.probe - have)])
        probe, band = decide(tree, policy)
        decision = decision_record(policy, probe, band)
        events: list[tuple[str, dict[str, Any]]] = []
        if "decided" not in state:
            events.append(("auto_decision", decision))
        inner, inner_params = self._inner(band, params)
        inner_state = dict(state.get("inner", {}))
        new_state = {"decided": band.name, "inner": inner_state}
        if band.max_tokens is not None and _spent(tree) >= band.max_tokens:
            events.append(("auto_budget", {"band": band.name, "max_tokens": band.max_tokens}))
            selection = _annotate(inner.select(tree, inner_params), decision)
            return Plan(finish=selection, state=new_state, events=events)
        view = _search_view(tree, policy) if inner.needs_step_scorer else tree
        step = inner.plan(view, inner_params, inner_state)
        if step.state is not None:
            new_state["inner"] = step.state
        finish = step.finish
        if finish is not None:
            # Select over the whole tree: the probe's samples count toward the answer.
            finish = _annotate(
                inner.select(tree, inner_params) if view is not tree else finish, decision
            )
        return Plan(
            expansions=step.expansions,
            finish=finish,
            state=new_state,
            node_meta=step.node_meta,
            events=events + step.events,
        )

    def select(self, tree: TreeView, params: AutoParams) -> Selection:
        policy = params.policy or DEFAULT_POLICY
        probe, band = decide(tree, policy)
        inner, inner_params = self._inner(band, params)
        return _annotate(inner.select(tree, inner_params), decision_record(policy, probe, band))

    def _inner(self, band: Band, params: AutoParams) -> tuple[Strategy[Any], SamplingParams]:
        """The band's strategy with the job's sampling knobs under the band's own params."""
        inner = self._registry[band.strategy]
        knobs = params.model_dump(include=set(SamplingParams.model_fields))
        return inner, inner.parse_params({**knobs, **band.params})


def decide(tree: TreeView, policy: AutoPolicy) -> tuple[Probe, Band]:
    """The band for the probe samples (the root's first ``policy.probe`` children)."""
    probe_nodes = [n for n in tree.children(tree.root_id)[: policy.probe] if n.usable]
    probe = measure(probe_nodes, policy.signal)
    return probe, policy.band_for(probe.difficulty)


def decision_record(policy: AutoPolicy, probe: Probe, band: Band) -> dict[str, Any]:
    return {
        "signal": policy.signal,
        "probe_samples": probe.samples,
        "agreement": round(probe.agreement, 4),
        "mean_score": None if probe.mean_score is None else round(probe.mean_score, 4),
        "difficulty": probe.difficulty,
        "band": band.name,
        "strategy": band.strategy,
        "params": band.params,
        "max_tokens": band.max_tokens,
        "explain": explain(policy, probe, band),
    }


def _annotate(selection: Selection, decision: dict[str, Any]) -> Selection:
    return dataclasses.replace(selection, details={**selection.details, "auto": decision})


def _spent(tree: TreeView) -> int:
    return sum(n.completion_tokens for n in tree.nodes.values())


def _search_view(tree: TreeView, policy: AutoPolicy) -> TreeView:
    """The tree without the probe samples, so that a step-level search starts at a root
    that has no step children yet (its new children are numbered after the probe's)."""
    probe_ids = {n.id for n in tree.children(tree.root_id)[: policy.probe]}
    return TreeView.build(n for n in tree.nodes.values() if n.id not in probe_ids)
