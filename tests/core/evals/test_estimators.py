"""The k-from-n estimators against brute force over every k-subset, and against closed
forms where the samples' law is known."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest

from ttc_core.evals.estimators import Samples, best_of_k, majority_curve, pass_at_k


def _subsets_mean(samples: Samples, k: int, value: object) -> float:
    total = 0.0
    subsets = list(itertools.combinations(range(samples.n), k))
    for subset in subsets:
        total += value(subset)  # type: ignore[operator]
    return total / len(subsets)


def _vote(samples: Samples, subset: tuple[int, ...], weighted: bool) -> float:
    tally: Counter[str] = Counter()
    present: set[str] = set()
    for i in subset:
        answer = samples.answers[i]
        if answer is None:
            continue
        present.add(answer)
        tally[answer] += (samples.scores[i] or 0.0) if weighted else 1.0
    if not present:
        return 0.0
    top = max(tally[a] for a in present)
    leaders = [a for a in present if tally[a] == top]
    right = {samples.answers[i] for i in range(samples.n) if samples.correct[i]}
    return sum(1 for a in leaders if a in right) / len(leaders)


def _random_samples(rng: random.Random, n: int) -> Samples:
    answers: list[str | None] = [rng.choice(["7", "8", "9", None]) for _ in range(n)]
    return Samples(
        correct=[a == "7" for a in answers],
        answers=answers,
        scores=[rng.choice([0.1, 0.5, 0.5, 0.9, None]) for _ in answers],
    )


def test_pass_at_k_is_chen_et_al() -> None:
    assert pass_at_k(10, 0, 3) == 0.0
    assert pass_at_k(10, 8, 3) == 1.0
    for n, c, k in [(10, 3, 1), (10, 3, 4), (64, 5, 16), (200, 1, 100)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_pass_at_k_is_unbiased_for_one_minus_one_minus_p_to_the_k() -> None:
    """E over c ~ Binomial(n, p) of the estimator is 1 - (1 - p)^k exactly."""
    n, p = 16, 0.3
    for k in (1, 2, 5, 16):
        mean = sum(
            math.comb(n, c) * p**c * (1 - p) ** (n - c) * pass_at_k(n, c, k) for c in range(n + 1)
        )
        assert mean == pytest.approx(1 - (1 - p) ** k, abs=1e-12)


def test_best_of_k_matches_every_subset_with_ties_split() -> None:
    rng = random.Random(1)
    for _ in range(20):
        samples = _random_samples(rng, 8)

        def best(subset: tuple[int, ...], samples: Samples = samples) -> float:
            level = [-math.inf if s is None else s for s in samples.scores]
            top = max(level[i] for i in subset)
            kept = [i for i in subset if level[i] == top]
            return sum(samples.correct[i] for i in kept) / len(kept)

        for k in range(1, 9):
            assert best_of_k(samples, k) == pytest.approx(_subsets_mean(samples, k, best))


def test_best_of_k_with_an_oracle_score_is_pass_at_k() -> None:
    correct = [True, False, False, True, False, False, False, False]
    samples = Samples(correct, ["1" if c else "2" for c in correct], [float(c) for c in correct])
    for k in range(1, 9):
        assert best_of_k(samples, k) == pytest.approx(pass_at_k(8, 2, k))


@pytest.mark.parametrize("weighted", [False, True])
def test_majority_is_exact_at_1_and_n_and_close_between(weighted: bool) -> None:
    rng = random.Random(2)
    for trial in range(6):
        samples = _random_samples(rng, 9)
        ks = list(range(1, 10))
        got = majority_curve(samples, ks, weighted=weighted, seed=trial, draws=4000)
        for k in ks:
            exact = _subsets_mean(
                samples, k, lambda s, samples=samples: _vote(samples, s, weighted)
            )
            if k in (1, 9):
                assert got[k] == pytest.approx(exact, abs=1e-12), k
            else:
                # Monte Carlo over 4000 permutations: within 4 standard errors.
                assert abs(got[k] - exact) <= 4 * math.sqrt(0.25 / 4000) + 1e-9, (k, got[k], exact)


def test_majority_is_deterministic_for_a_seed_and_varies_with_it() -> None:
    samples = _random_samples(random.Random(3), 20)
    a = majority_curve(samples, [3, 5, 7], weighted=False, seed=11)
    assert a == majority_curve(samples, [3, 5, 7], weighted=False, seed=11)
    assert a != majority_curve(samples, [3, 5, 7], weighted=False, seed=12)


def test_majority_without_any_answer_is_wrong() -> None:
    samples = Samples([False] * 4, [None] * 4, [None] * 4)
    assert majority_curve(samples, [1, 2, 4], weighted=False, seed=0) == {1: 0.0, 2: 0.0, 4: 0.0}


def test_majority_at_k_of_a_known_law_is_its_multinomial_value() -> None:
    """Many samples from p = 0.5 right and two distractors at 0.25: majority@3's closed
    form is P(>= 2 right) + P(1 right, 1 each wrong) / 3."""
    p, q = 0.5, 0.25
    closed = (3 * p**2 * (1 - p) + p**3) + 6 * p * q * q / 3
    rng = random.Random(4)
    answers: list[str | None] = [
        rng.choices(["right", "w1", "w2"], [p, q, q])[0] for _ in range(3000)
    ]
    samples = Samples([a == "right" for a in answers], answers, [None] * len(answers))
    got = majority_curve(samples, [3], weighted=False, seed=5, draws=2000)[3]
    # Sampling error of 3000 draws plus Monte Carlo over 2000 permutations.
    assert abs(got - closed) < 4 * math.sqrt(closed * (1 - closed) * (3 / 3000 + 1 / 2000))


def test_sampling_arms_that_draw_alike_share_one_run() -> None:
    from ttc_core.evals.planning import EvalPlan
    from ttc_core.evals.spec import EvalSpec

    spec = EvalSpec.model_validate(
        {
            "dataset": "d",
            "endpoint": "sim",
            "arms": [
                {"strategy": "best_of_n"},
                {"strategy": "self_consistency", "params": {"weighted": True}},
                {"strategy": "self_consistency", "params": {"temperature": 0.5}},
                {"strategy": "beam_search", "params": {"beam_width": 2}, "grid": {"n": [2, 4]}},
            ],
            "grid": {"n": [1, 2, 4, 8]},
            "seeds": 2,
        }
    )
    plan = EvalPlan(spec, 3, eval_id="5b9e2c1a-7f3d-4e8b-a6c0-1d2e3f4a5b6c", seed=1)
    # Per problem and seed: one run for arms 0 and 1, one for arm 2, two beam searches.
    assert plan.per_problem == 2 * (1 + 1 + 2) and plan.total == 3 * plan.per_problem
    jobs = [plan.at(i) for i in range(plan.total)]
    assert [j.arms for j in jobs[:4]] == [(0, 1), (0, 1), (2,), (2,)]
    assert plan.value(jobs[0]) == 8 and plan.value(jobs[4]) == 2 and plan.value(jobs[6]) == 4
    assert len({plan.job_id(i) for i in range(plan.total)}) == plan.total
    # Seeds: per problem and seed index, the same for every arm and point.
    assert {plan.job_seed(j.problem, j.seed_index) for j in jobs if j.problem == 0} == {
        plan.job_seed(0, 0),
        plan.job_seed(0, 1),
    }
