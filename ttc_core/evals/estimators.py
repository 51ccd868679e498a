"""Accuracy at k samples from one run of n >= k samples per problem.

Sampling strategies draw their samples independently, so the k-sample version of a
problem is a uniformly random k-subset of the n samples drawn. Each estimator here is
the expectation over those subsets (a U-statistic: unbiased for the k-sample accuracy),
computed exactly where a closed form exists and otherwise by Monte-Carlo subsampling
with a fixed seed (the same inputs always give the same number):

* :func:`pass_at_k`: any of the k is right; Chen et al. 2021,
  ``1 - C(n - c, k) / C(n, k)`` with c right samples of n.
* :func:`best_of_k`: the highest-scored of the k is right; exact over score levels
  (ties broken uniformly at random, as exchangeable sample order does).
* :func:`majority_curve`: the most frequent answer among the k (``weighted``: the answer
  with the largest sum of scores) is right; ties split evenly between the tied answers;
  samples without an answer do not vote. Exact at k = 1 and k = n, Monte-Carlo between:
  ``draws`` random permutations of the n samples, whose k-prefixes are uniform
  k-subsets for every k at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Monte-Carlo permutations per problem for the voting estimators.
DEFAULT_DRAWS = 1000


@dataclass(frozen=True, slots=True)
class Samples:
    """One problem's samples from one run, in draw order."""

    #: Each sample's agreement with the reference.
    correct: Sequence[bool]
    #: Normalized extracted answers (``None``: the sample states none).
    answers: Sequence[str | None]
    #: What a best-of rule ranks by (``None`` counts as the lowest score).
    scores: Sequence[float | None]

    @property
    def n(self) -> int:
        return len(self.correct)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased pass@k: ``1 - C(n - c, k) / C(n, k)`` (as a stable product)."""
    if not 1 <= k <= n:
        raise ValueError(f"k={k} outside 1..n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def best_of_k(samples: Samples, k: int) -> float:
    """P(the highest-scored of a random k-subset is right), exactly: the subset's best
    score level is level j with ``(C(n - above_j, k) - C(n - above_j - at_j, k)) / C(n, k)``,
    and then each sample at that level is equally likely to be the one kept."""
    n = samples.n
    if not 1 <= k <= n:
        raise ValueError(f"k={k} outside 1..n={n}")
    levels: dict[float, list[bool]] = {}
    for score, right in zip(samples.scores, samples.correct, strict=True):
        levels.setdefault(-math.inf if score is None else float(score), []).append(bool(right))
    total = math.comb(n, k)
    above = 0
    value = 0.0
    for level in sorted(levels, reverse=True):
        group = levels[level]
        p_top = (math.comb(n - above, k) - math.comb(n - above - len(group), k)) / total
        value += p_top * (sum(group) / len(group))
        above += len(group)
    return value


def majority_curve(
    samples: Samples, ks: Sequence[int], *, weighted: bool, seed: int, draws: int = DEFAULT_DRAWS
) -> dict[int, float]:
    """majority@k (``weighted``: reward-weighted majority@k) for every k in ``ks``."""
    n = samples.n
    if any(not 1 <= k <= n for k in ks):
        raise ValueError(f"k outside 1..n={n}: {sorted(ks)}")
    classes: dict[str, int] = {}
    cls = np.array(
        [-1 if a is None else classes.setdefault(a, len(classes)) for a in samples.answers],
        dtype=np.int64,
    )
    m = len(classes)
    if m == 0:
        return {k: 0.0 for k in ks}
    right = np.zeros(m)
    for c, ok in zip(cls, samples.correct, strict=True):
        if c >= 0 and ok:
            right[c] = 1.0
    if weighted:
        weight = np.array([max(0.0, s or 0.0) for s in samples.scores], dtype=np.float64)
    else:
        weight = np.ones(n)
    onehot = np.zeros((n, m))
    voters = cls >= 0
    onehot[np.arange(n)[voters], cls[voters]] = weight[voters]
    present = np.zeros((n, m))
    present[np.arange(n)[voters], cls[voters]] = 1.0
    out: dict[int, float] = {}
    wanted = sorted(set(ks))
    middle = [k for k in wanted if 1 < k < n]
    if middle:
        rng = np.random.default_rng(seed)
        order = np.argsort(rng.random((draws, n)), axis=1)
        tallies = np.cumsum(onehot[order], axis=1)  # (draws, n, m): votes of each prefix
        # An answer is in a prefix once it has a vote (weighted: once a sample of it is).
        seen = np.cumsum(present[order], axis=1) > 0 if weighted else tallies > 0
        for k in middle:
            out[k] = float(np.mean(_vote_value(tallies[:, k - 1, :], seen[:, k - 1, :], right)))
    for k in wanted:
        if k == n:
            full = onehot.sum(axis=0, keepdims=True)
            out[k] = float(_vote_value(full, present.sum(axis=0, keepdims=True) > 0, right)[0])
        elif k == 1:
            # One sample: it wins its own vote (whatever its weight) if it states an answer.
            out[k] = float(np.mean([right[c] if c >= 0 else 0.0 for c in cls]))
    return {k: out[k] for k in ks}


def _vote_value(tally: np.ndarray, seen: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per row: the share of the leading answers (among those present) that is right."""
    masked = np.where(seen, tally, -np.inf)
    top = masked.max(axis=1, keepdims=True)
    leaders = seen & (masked == top)
    count = leaders.sum(axis=1)
    wins = (leaders * right).sum(axis=1)
    return np.where(count > 0, wins / np.maximum(count, 1), 0.0)
