"""The simulator's ``graded`` family: per-problem accuracy from a stated distribution,
keyed by the problem id, and wrong answers concentrated on a few distractors (pure
generation, no server)."""

from __future__ import annotations

from collections import Counter

import pytest

from ttc_sim.config import SimConfig
from ttc_sim.model import distractor_answers, generate
from ttc_sim.tasks import find_problem, graded_accuracy, graded_problem, graded_problems


def test_graded_problems_are_found_by_id_and_keep_their_accuracy() -> None:
    problem = graded_problem(4, 17)
    assert problem.id == "D-4-17" and problem.family == "graded"
    assert problem.question.startswith("Problem D-4-17:")
    assert find_problem("Solve this.\n" + problem.question) == problem
    p = graded_accuracy(problem.id, 3.0, 1.0)
    assert p == graded_accuracy(problem.id, 3.0, 1.0)  # the same in every run
    assert graded_accuracy(problem.id, 1.0, 1.0) != p  # the knobs change the draw


def test_accuracies_follow_the_stated_beta_distribution() -> None:
    ps = [graded_accuracy(p.id, 3.0, 1.0) for p in graded_problems(2000, seed=1)]
    mean = sum(ps) / len(ps)
    assert mean == pytest.approx(0.75, abs=0.02)  # Beta(3, 1) has mean 3/4
    below_half = sum(p < 0.5 for p in ps) / len(ps)
    assert below_half == pytest.approx(0.125, abs=0.025)  # P(p < 1/2) = (1/2)^3


def test_samples_are_right_at_the_problems_rate_and_wrong_ones_skewed() -> None:
    cfg = SimConfig()
    problem = graded_problem(0, 3)
    p = graded_accuracy(problem.id, cfg.graded_alpha, cfg.graded_beta)
    samples = [generate(problem, seed, cfg) for seed in range(4000)]
    rate = sum(s.correct for s in samples) / len(samples)
    assert rate == pytest.approx(p, abs=0.03)
    wrong = Counter(s.answer for s in samples if not s.correct)
    order = distractor_answers(problem, cfg.distractors)
    shares = [wrong[a] / sum(wrong.values()) for a in order]
    # Weights 1, 1/2, 1/4, 1/8 over 15/8: 0.533, 0.267, 0.133, 0.067.
    assert shares == pytest.approx([8 / 15, 4 / 15, 2 / 15, 1 / 15], abs=0.05)
    assert generate(problem, 7, cfg) == generate(problem, 7, cfg)
