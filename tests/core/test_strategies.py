"""Planning of best-of-N and self-consistency on hand-built trees (no I/O)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ttc_core.search.strategies import BestOfN, Expand, SelfConsistency, get_strategy
from ttc_core.search.strategies.voting import tally
from ttc_core.search.tree import NodeView, TreeView

ROOT = "root"


def tree(*samples: tuple[str | None, float | None], status: str = "done") -> TreeView:
    nodes = [NodeView(ROOT, None, 0, 0, "root", "done")]
    for i, (answer, score) in enumerate(samples):
        nodes.append(NodeView(f"n{i}", ROOT, 1, i, "sample", status, True, answer, score))
    return TreeView.build(nodes)


def test_best_of_n_plans_missing_samples_then_selects_highest_score() -> None:
    bon = BestOfN()
    params = bon.parse_params({"n": 4})
    assert bon.plan(tree(), params, {}).expansions == [Expand(ROOT, 4)]
    assert bon.plan(tree(("1", 0.2)), params, {}).expansions == [Expand(ROOT, 3)]
    plan = bon.plan(tree(("1", 0.2), ("2", 0.9), ("3", 0.9), ("4", 0.1)), params, {})
    assert plan.expansions == []
    assert plan.finish is not None
    # Tie between n1 and n2 at 0.9: the earlier sample wins.
    assert plan.finish.node_id == "n1"
    assert plan.finish.answer == "2"


def test_weighted_best_of_n_sums_scores_per_answer() -> None:
    bon = BestOfN()
    params = bon.parse_params({"n": 4, "weighted": True})
    selection = bon.select(tree(("7", 0.9), ("8", 0.5), ("8", 0.5), ("8", 0.1)), params)
    # "8" sums to 1.1 > 0.9; its best-scored sample is n1.
    assert selection.answer == "8"
    assert selection.node_id == "n1"
    assert selection.details["weights"] == pytest.approx({"8": 1.1, "7": 0.9})


def test_best_of_n_ignores_failed_samples_and_fails_when_none_left() -> None:
    bon = BestOfN()
    params = bon.parse_params({"n": 2})
    selection = bon.select(tree(("1", 1.0), ("2", 0.0), status="failed"), params)
    assert selection.node_id is None
    assert selection.error


def test_self_consistency_majority_and_deterministic_ties() -> None:
    sc = SelfConsistency()
    params = sc.parse_params({"n": 5})
    sel = sc.select(tree(("3", None), ("5", None), ("5", None), ("3", None), ("9", None)), params)
    # 3 and 5 tie at two votes each; no scores; "3" appeared first.
    assert sel.answer == "3"
    assert sel.node_id == "n0"
    assert sel.details["votes"] == {"3": 2, "5": 2, "9": 1}
    sel = sc.select(tree(("3", None), ("5", None), ("5", None)), params)
    assert sel.answer == "5" and sel.details["agreement"] == pytest.approx(2 / 3, abs=1e-3)


def test_self_consistency_weighted_votes_and_missing_answers() -> None:
    sc = SelfConsistency()
    params = sc.parse_params({"n": 4, "weighted": True})
    sel = sc.select(tree(("1", 0.9), (None, 1.0), ("2", 0.4), ("2", 0.4)), params)
    assert sel.answer == "1"
    assert sc.select(tree((None, None)), params).error


def test_tally_orders_by_votes_then_score_then_first_seen() -> None:
    t = tree(("b", 0.5), ("a", 0.5), ("a", 0.1), ("b", 0.2))
    votes = tally(t.children(ROOT))
    assert [e.answer for e in votes.entries] == ["b", "a"]  # 2 each; b has 0.7 > 0.6


@pytest.mark.parametrize("raw", [{"n": 0}, {"n": 100_000}, {"n": "many"}, {"x": 1}])
def test_params_are_validated(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        get_strategy("best_of_n").parse_params(raw)


def test_unknown_strategy_is_named() -> None:
    with pytest.raises(KeyError, match="nope"):
        get_strategy("nope")
