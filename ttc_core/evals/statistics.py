"""Intervals and paired tests over problems (shared with ``ttc_core.problem_batches.rounds``).

Every resampling is seeded, so the same data always gives the same interval. Values are
per-problem accuracies: 0/1 for one job's answer, fractions for an estimator's
expectation over subsets; both bootstrap the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Bootstrap resamples of an interval.
BOOTSTRAP_RESAMPLES = 2000


def bootstrap_ci(
    values: Sequence[float], *, seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float] | None:
    """Percentile 95% interval of the mean over problems (``None`` for no problems)."""
    count = len(values)
    if not count:
        return None
    data = np.asarray(values, dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, count, size=(resamples, count))
    means = np.sort(data[picks].mean(axis=1))
    return float(means[int(0.025 * resamples)]), float(means[int(0.975 * resamples) - 1])


def paired_difference(
    a: Sequence[float], b: Sequence[float], *, seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, Any]:
    """Mean of ``a - b`` over the same problems, its bootstrap 95% interval, and McNemar's
    exact test on the discordant pairs. For fractional values (an expectation over
    subsets, where both arms may share their samples) a problem counts by how far one
    arm is ahead on it, ``sum max(a - b, 0)`` and ``sum max(b - a, 0)``, rounded for the
    test; for 0/1 values these are the discordant pairs."""
    if len(a) != len(b):
        raise ValueError("paired values must cover the same problems")
    if not a:
        return {"problems": 0}
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    interval = bootstrap_ci(diffs, seed=seed, resamples=resamples)
    assert interval is not None
    only_a = math.fsum(max(d, 0.0) for d in diffs)
    only_b = math.fsum(max(-d, 0.0) for d in diffs)
    return {
        "problems": len(diffs),
        "difference": round(math.fsum(diffs) / len(diffs), 4),
        "ci95": [round(interval[0], 4), round(interval[1], 4)],
        "only_a_right": round(only_a, 2),
        "only_b_right": round(only_b, 2),
        "mcnemar_p": round(mcnemar_exact(round(only_a), round(only_b)), 6),
    }


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: discordant pairs are Binomial(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)
