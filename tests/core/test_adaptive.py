"""Adaptive stopping, stop-on-pass and ``strategy: auto`` on hand-built trees (no I/O)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from ttc_core.errors import InputError
from ttc_core.search.auto import DEFAULT_POLICY, AutoPolicy, measure
from ttc_core.search.strategies import BestOfN, Expand, SelfConsistency, check_policy, get_strategy
from ttc_core.search.strategies.adaptive import (
    AdaptiveParams,
    beta_leader_probability,
    decide,
    dirichlet_leader_probability,
)
from ttc_core.search.tree import NodeView, TreeView
from ttc_core.settings import Settings

ROOT = "root"


def tree(
    *samples: tuple[str | None, float | None] | tuple[str | None, float | None, bool | None],
) -> TreeView:
    nodes = [NodeView(ROOT, None, 0, 0, "root", "done")]
    for i, sample in enumerate(samples):
        answer, score = sample[0], sample[1]
        correct = sample[2] if len(sample) > 2 else None  # type: ignore[misc]
        nodes.append(
            NodeView(f"n{i}", ROOT, 1, i, "sample", "done", True, answer, score, correct, 10)
        )
    return TreeView.build(nodes)


def votes(*answers: str) -> TreeView:
    return tree(*((a, None) for a in answers))


# ------------------------------------------------------------------ posteriors


def test_beta_rule_matches_the_closed_form() -> None:
    # P(x > 1/2), x ~ Beta(v1 + 1, v2 + 1), is P(Binomial(v1 + v2 + 1, 1/2) <= v1).
    assert beta_leader_probability(0, 0) == 0.5
    assert beta_leader_probability(4, 0) == 1 - 2**-5  # 0.96875
    assert beta_leader_probability(3, 0) == 1 - 2**-4  # 0.9375: not yet at 0.95
    assert beta_leader_probability(3, 1) == pytest.approx(0.8125)  # 1 - (5 + 1) / 32
    assert beta_leader_probability(8, 2) == pytest.approx(
        sum(math.comb(11, k) for k in range(9)) / 2**11
    )
    # Symmetry: P(leader) + P(runner-up) = 1.
    assert beta_leader_probability(5, 2) + beta_leader_probability(2, 5) == pytest.approx(1.0)


def test_dirichlet_rule_agrees_with_beta_for_two_answers_and_is_deterministic() -> None:
    for v1, v2 in [(4, 0), (3, 1), (6, 3)]:
        estimate = dirichlet_leader_probability([v1, v2])
        assert estimate == pytest.approx(beta_leader_probability(v1, v2), abs=0.025)
        assert dirichlet_leader_probability([v1, v2]) == estimate  # seeded by the counts
    # A third answer with votes makes the leader less sure than against one rival.
    assert dirichlet_leader_probability([4, 2, 2]) < dirichlet_leader_probability([4, 2])
    assert dirichlet_leader_probability([3, 3]) == pytest.approx(0.5, abs=0.03)
    assert dirichlet_leader_probability([7]) == 1.0


def test_decide_waits_for_min_samples_and_confidence() -> None:
    rule = AdaptiveParams(rule="beta", confidence=0.95, min_samples=6, batch=2)
    assert not decide({"a": 5}, 5, rule).settled  # P = 0.984, but under min_samples
    assert decide({"a": 6}, 6, rule).settled
    assert not decide({"a": 4, "b": 2}, 6, rule).settled
    assert not decide({}, 6, rule).settled  # nothing voted


# ------------------------------------------------------------- self-consistency


def test_adaptive_self_consistency_samples_in_rounds_and_stops_when_settled() -> None:
    sc = SelfConsistency()
    params = sc.parse_params({"n": 40, "adaptive": {"min_samples": 4, "batch": 1}})
    assert sc.plan(votes(), params, {}).expansions == [Expand(ROOT, 4)]
    # 4 agreeing votes: P = 0.969 >= 0.95 -> stop at 4.
    plan = sc.plan(votes("7", "7", "7", "7"), params, {})
    assert plan.finish is not None and plan.finish.answer == "7"
    ((kind, event),) = plan.events
    assert kind == "adaptive_stop"
    assert event["stopped_by"] == "posterior" and event["counts"] == {"7": 4}
    assert event["probability"] == pytest.approx(0.96875)
    assert plan.finish.details["adaptive"]["settled"] is True
    # 3 to 1: P = 0.8125, one more sample.
    assert sc.plan(votes("7", "7", "2", "7"), params, {}).expansions == [Expand(ROOT, 1)]


def test_adaptive_self_consistency_stops_at_n_when_never_settled() -> None:
    sc = SelfConsistency()
    params = sc.parse_params({"n": 6, "adaptive": {"min_samples": 2, "batch": 4}})
    assert sc.plan(votes("1", "2"), params, {}).expansions == [Expand(ROOT, 4)]
    plan = sc.plan(votes("1", "2", "1", "2", "3", "1"), params, {})
    assert plan.finish is not None and plan.finish.answer == "1"
    assert plan.events[0][1]["stopped_by"] == "max_samples"


def test_adaptive_params_refuse_absurd_values() -> None:
    sc = SelfConsistency()
    for bad in (
        {"n": 40, "adaptive": {"confidence": 1.5}},
        {"n": 40, "adaptive": {"confidence": 0.2}},
        {"n": 40, "adaptive": {"batch": 0}},
        {"n": 40, "adaptive": {"rule": "gamma"}},
    ):
        with pytest.raises(ValidationError):
            sc.parse_params(bad)


def test_plain_self_consistency_is_unchanged() -> None:
    sc = SelfConsistency()
    params = sc.parse_params({"n": 4})
    assert sc.plan(votes("7", "7"), params, {}).expansions == [Expand(ROOT, 2)]
    plan = sc.plan(votes("7", "7", "7", "7"), params, {})
    assert plan.finish is not None and plan.events == []
    assert "adaptive" not in plan.finish.details


# --------------------------------------------------------------------- best-of-N


def test_best_of_n_stop_on_pass() -> None:
    bon = BestOfN()
    params = bon.parse_params({"n": 12, "stop_on_pass": True, "batch": 4})
    assert bon.plan(tree(), params, {}).expansions == [Expand(ROOT, 4)]
    failing = [("1", 0.0, False)] * 4
    assert bon.plan(tree(*failing), params, {}).expansions == [Expand(ROOT, 4)]
    plan = bon.plan(tree(*failing, ("2", 0.0, False), ("3", 1.0, True)), params, {})
    assert plan.finish is not None and plan.finish.answer == "3"
    assert plan.events[0][1]["stopped_by"] == "pass" and plan.events[0][1]["samples"] == 6
    # Never passes: stops at n.
    plan = bon.plan(tree(*([("1", 0.0, False)] * 12)), params, {})
    assert plan.finish is not None and plan.events[0][1]["stopped_by"] == "max_samples"


# -------------------------------------------------------------------------- auto


POLICY = {
    "signal": "agreement",
    "probe": 4,
    "bands": [
        {"name": "easy", "up_to": 0.25, "strategy": "self_consistency", "params": {"n": 4}},
        {
            "name": "hard",
            "up_to": 1.0,
            "strategy": "self_consistency",
            "params": {"n": 12},
            "max_tokens": 100,
        },
    ],
}


def test_auto_probes_then_decides_by_agreement() -> None:
    auto = get_strategy("auto")
    params = auto.parse_params({"policy": POLICY})
    assert auto.plan(votes(), params, {}).expansions == [Expand(ROOT, 4)]
    easy = auto.plan(votes("5", "5", "5", "9"), params, {})
    assert easy.finish is not None and easy.finish.answer == "5"
    ((kind, decision),) = easy.events
    assert kind == "auto_decision" and decision["band"] == "easy"
    assert decision["agreement"] == 0.75 and decision["difficulty"] == 0.25
    assert "probe agreement 0.75" in decision["explain"] and "easy" in decision["explain"]
    hard = auto.plan(votes("5", "6", "7", "5"), params, {})
    assert hard.expansions == [Expand(ROOT, 8)]  # the probe's 4 count toward n=12
    assert hard.state == {"decided": "hard", "inner": {}}
    assert hard.events[0][1]["explain"].endswith("hard -> self_consistency, 100 tokens")
    # Decided already: no second decision event.
    assert auto.plan(votes("5", "6", "7", "5"), params, hard.state).events == []


def test_auto_band_token_budget_ends_the_job() -> None:
    auto = get_strategy("auto")
    params = auto.parse_params({"policy": POLICY})
    # 10 tokens each: 10 samples = 100 tokens = the hard band's budget.
    plan = auto.plan(
        votes("5", "6", "7", "5", "1", "2", "5", "5", "3", "4"), params, {"decided": "hard"}
    )
    assert plan.finish is not None and plan.finish.answer == "5"
    assert plan.finish.details["auto"]["band"] == "hard"
    assert plan.events[0][0] == "auto_budget"


def test_auto_policy_validation_names_the_field() -> None:
    bad = {**POLICY, "bands": [{**POLICY["bands"][1], "strategy": "nope"}]}  # type: ignore[dict-item]
    with pytest.raises(InputError) as info:
        check_policy(AutoPolicy.model_validate(bad), field="params.policy")
    assert info.value.field == "params.policy.bands.0.strategy"
    bad_params = {**POLICY, "bands": [{**POLICY["bands"][1], "params": {"n": -1}}]}  # type: ignore[dict-item]
    with pytest.raises(InputError) as info:
        check_policy(AutoPolicy.model_validate(bad_params), field="params.policy")
    assert info.value.field == "params.policy.bands.0.params.n"
    with pytest.raises(ValidationError):  # the last band must reach difficulty 1
        AutoPolicy.model_validate({"bands": [{**POLICY["bands"][0]}]})  # type: ignore[dict-item]
    check_policy(DEFAULT_POLICY)


def test_probe_measures_score_signal() -> None:
    samples = list(tree(("1", 0.9), ("2", 0.7)).children(ROOT))
    probe = measure(samples, "score")
    assert probe.mean_score == pytest.approx(0.8) and probe.difficulty == pytest.approx(0.2)
    assert measure(samples, "agreement").difficulty == 0.5


def test_auto_hands_a_hard_problem_to_beam_search_from_the_root() -> None:
    auto = get_strategy("auto")
    policy = {
        "probe": 4,
        "bands": [
            {"name": "easy", "up_to": 0.25, "strategy": "self_consistency", "params": {"n": 4}},
            {
                "name": "hard",
                "up_to": 1.0,
                "strategy": "beam_search",
                "params": {"n": 4, "beam_width": 2, "max_depth": 4},
                "max_tokens": 8000,
            },
        ],
    }
    params = auto.parse_params({"policy": policy})
    probe = votes("1", "2", "3", "1")
    plan = auto.plan(probe, params, {})
    # The search starts at the root beside the probe's samples, one step at a time.
    assert plan.expansions == [Expand(ROOT, 4, role="step")]
    decision = plan.events[0][1]
    assert decision["explain"] == (
        "probe agreement 0.50 over 4 samples -> difficulty 0.50 -> hard -> beam_search, 8000 tokens"
    )
    # The new step nodes (numbered after the probe's) are what the search ranks next.
    nodes = list(probe.nodes.values())
    nodes += [
        NodeView(f"s{i}", ROOT, 1, 4 + i, "step", "done", False, None, 0.1 * i) for i in range(4)
    ]
    grown = TreeView.build(nodes)
    step = auto.plan(grown, params, plan.state or {})
    assert sorted(e.parent_id for e in step.expansions) == ["s2", "s3"]
    assert all(e.role == "step" for e in step.expansions)


def test_a_server_policy_naming_an_unknown_strategy_refuses_to_start() -> None:
    bad = {**POLICY, "bands": [{**POLICY["bands"][1], "strategy": "nope"}]}  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match=r"auto_policy\.bands\.0\.strategy"):
        Settings(auto_policy=bad)  # type: ignore[arg-type]
    assert Settings().auto_policy == DEFAULT_POLICY
