"""Step-score aggregation and the small value types of ttc_core.scoring."""

from __future__ import annotations

import math

import pytest

from ttc_core.scoring import AGGREGATIONS, PartialSolution, StepScorer, StepScores, aggregate
from ttc_core.scoring.judge import LlmJudgeScorer
from ttc_core.scoring.prm import JsonPrmScorer, VllmPrmScorer

SCORES = [0.9, 0.5, 0.8]


@pytest.mark.parametrize(
    ("how", "expected"),
    [("last", 0.8), ("min", 0.5), ("prod", 0.9 * 0.5 * 0.8), ("mean", (0.9 + 0.5 + 0.8) / 3)],
)
def test_aggregate(how: str, expected: float) -> None:
    assert aggregate(SCORES, how) == pytest.approx(expected)  # type: ignore[arg-type]


def test_aggregate_single_step_is_that_step() -> None:
    for how in AGGREGATIONS:
        assert aggregate([0.25], how) == 0.25  # type: ignore[arg-type]


def test_aggregate_accepts_tuples_and_ints() -> None:
    assert aggregate((1, 0, 1), "min") == 0.0
    assert isinstance(aggregate((1, 1), "prod"), float)


def test_mean_is_exact_enough() -> None:
    assert aggregate([0.1] * 10, "mean") == pytest.approx(0.1, abs=1e-15)


def test_empty_and_unknown_aggregation_raise() -> None:
    with pytest.raises(ValueError, match="no step scores"):
        aggregate([], "min")
    with pytest.raises(ValueError, match="unknown aggregation 'max'"):
        aggregate([0.5], "max")  # type: ignore[arg-type]


def test_aggregations_listed() -> None:
    assert AGGREGATIONS == ("last", "min", "prod", "mean")


def test_step_scores_aggregate_uses_path_value() -> None:
    assert StepScores([0.9, 0.2]).aggregate("last") == 0.2
    assert StepScores([0.9, 0.2]).aggregate("min") == 0.2
    judged = StepScores(step_scores=[0.7], path_value=0.7)
    for how in AGGREGATIONS:
        assert judged.aggregate(how) == 0.7  # type: ignore[arg-type]
    # path_value wins even when it disagrees with the step scores
    assert StepScores([0.1, 0.2], path_value=0.9).aggregate("prod") == 0.9


def test_step_scores_last() -> None:
    assert StepScores([0.3, 0.6]).last == 0.6
    assert StepScores([], path_value=0.4).last == 0.4
    assert StepScores([]).last is None


def test_partial_solution_is_hashable_and_coerces_lists() -> None:
    a = PartialSolution("q", ("s1", "s2"))
    b = PartialSolution("q", ["s1", "s2"])  # type: ignore[arg-type]
    assert a == b
    assert isinstance(b.steps, tuple)
    assert len({a, b}) == 1
    assert PartialSolution("q").steps == ()


def test_implementations_satisfy_the_protocol() -> None:
    for cls in (VllmPrmScorer, JsonPrmScorer, LlmJudgeScorer):
        assert hasattr(cls, "kind")
        assert callable(cls.score)
    assert not isinstance(object(), StepScorer)


def test_nan_free_prod_of_probabilities() -> None:
    assert not math.isnan(aggregate([1e-300, 1e-300], "prod"))
