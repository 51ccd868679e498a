"""Bootstrap intervals and paired tests of the evals (shared with problem batches)."""

from __future__ import annotations

import pytest

from ttc_core.evals.statistics import bootstrap_ci, mcnemar_exact, paired_difference
from ttc_core.problem_batches.rounds import compare


def test_mcnemar_exact_two_sided() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)


def test_bootstrap_interval_covers_the_mean_and_is_seeded() -> None:
    values = [1.0] * 70 + [0.0] * 30
    low, high = bootstrap_ci(values, seed=1) or (0, 0)
    assert low < 0.7 < high
    assert (low, high) == bootstrap_ci(values, seed=1)
    assert bootstrap_ci([], seed=1) is None
    # The normal approximation's 95% half-width is 1.96 * sqrt(.21/100) = 0.0898.
    assert high - low == pytest.approx(2 * 0.0898, abs=0.03)


def test_paired_difference_counts_discordant_pairs() -> None:
    a = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    b = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    out = paired_difference(a, b, seed=3)
    assert out["difference"] == pytest.approx(0.3333)
    assert (out["only_a_right"], out["only_b_right"]) == (3, 1)
    assert out["mcnemar_p"] == pytest.approx(mcnemar_exact(3, 1))
    same = paired_difference([0.4, 0.6], [0.4, 0.6], seed=3)
    assert same["difference"] == 0 and same["mcnemar_p"] == 1.0 and same["ci95"] == [0, 0]


def test_problem_batches_compare_keeps_its_names() -> None:
    out = compare([True, True, None, False], [False, True, True, False], seed=1)
    assert out["problems"] == 3
    assert (out["only_adaptive_right"], out["only_uniform_right"]) == (1, 0)
