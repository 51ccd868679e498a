"""Where the next samples of a batch help most: marginal gain of majority voting.

For one problem with votes ``v1 >= v2`` for its two leading answers, the leader's share
between the two is ``q ~ Beta(v1 + 1, v2 + 1)`` (the same posterior as the ``beta``
stopping rule), and self-consistency's answer is right when the final leader is the
answer the model favours (``q > 1/2`` for the current leader). With ``k`` more samples
landing on the two (``X ~ Binomial(k, q)`` for the leader)::

    V(v1, v2, k) = E_q[ 1{q > 1/2} P(v1 + X > v2 + k - X)
                      + 1{q < 1/2} P(v1 + X < v2 + k - X) + 1/2 P(tie) ]

is the probability that the majority is right after them; ``V(v1, v2, 0) = P(q > 1/2)``.
Only a share of new samples lands on the top two: ``m = (v1 + v2 + 1) / (n + 2)`` of them
(Laplace's rule over the ``n`` samples drawn), so ``k`` samples count as ``round(m k)``.

The allocation is greedy in chunks of :data:`CHUNK` samples: each chunk goes to the
problem whose next samples raise ``V`` the most per sample (:func:`marginal_gain`). A
settled problem (``V`` near 1 already) and a hopeless one (votes spread so thin that more
samples move nothing) gain less than :data:`MIN_GAIN` per sample and get nothing. ``V``
is integrated on a fixed grid of ``q`` (deterministic, and memoised: many problems share
the same counts).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

#: Samples per allocation step (even, so that a chunk cannot only create a tie).
CHUNK = 2
#: Marginal gain in P(correct majority) per sample below which a problem gets nothing.
MIN_GAIN = 0.002
#: Grid points of the integral over q.
_GRID = 200


@dataclass(frozen=True)
class ProblemVotes:
    """What a problem's samples say so far."""

    #: Vote counts per answer, any order.
    counts: tuple[int, ...]
    #: Samples drawn (those without an answer too).
    samples: int

    @property
    def top_two(self) -> tuple[int, int]:
        ordered = [*sorted(self.counts, reverse=True), 0, 0]
        return ordered[0], ordered[1]

    @property
    def top_two_share(self) -> float:
        v1, v2 = self.top_two
        return (v1 + v2 + 1) / (self.samples + 2)


@lru_cache(maxsize=4096)
def _posterior_grid(v1: int, v2: int) -> tuple[tuple[float, float], ...]:
    """``(q, weight)`` pairs of Beta(v1 + 1, v2 + 1) on a midpoint grid, weights sum to 1."""
    points = [(j + 0.5) / _GRID for j in range(_GRID)]
    logs = [v1 * math.log(q) + v2 * math.log1p(-q) for q in points]
    top = max(logs)
    weights = [math.exp(x - top) for x in logs]
    total = sum(weights)
    return tuple((q, w / total) for q, w in zip(points, weights, strict=True))


@lru_cache(maxsize=65_536)
def majority_right(v1: int, v2: int, k: int) -> float:
    """``V(v1, v2, k)``: P(the majority is the favoured answer after k more samples)."""
    total = 0.0
    for q, weight in _posterior_grid(v1, v2):
        win = tie = 0.0
        for x in range(k + 1):
            pmf = math.comb(k, x) * q**x * (1 - q) ** (k - x)
            lead, trail = v1 + x, v2 + k - x
            if lead > trail:
                win += pmf
            elif lead == trail:
                tie += pmf
        lose = 1.0 - win - tie
        right = win if q > 0.5 else lose
        total += weight * (right + 0.5 * tie)
    return total


def value(problem: ProblemVotes, extra: int) -> float:
    """P(correct majority) of ``problem`` after ``extra`` more samples."""
    v1, v2 = problem.top_two
    effective = round(problem.top_two_share * extra)
    return majority_right(v1, v2, effective)


def marginal_gain(problem: ProblemVotes, extra: int, cap: int) -> float:
    """Best average rise of ``V`` per sample over the next 2, 4, 8, ... samples (up to
    ``cap`` in all). ``V`` is not concave (an even number of votes can only tie), so the
    next chunk alone may show no gain where a few more would: look a little further."""
    now = value(problem, extra)
    best = 0.0
    horizon = CHUNK
    while extra + horizon <= cap:
        best = max(best, (value(problem, extra + horizon) - now) / horizon)
        horizon *= 2
    return best


def allocate(
    problems: Sequence[ProblemVotes], budget: int, *, cap: int, min_gain: float = MIN_GAIN
) -> list[int]:
    """Extra samples per problem (in order), at most ``budget`` in all and ``cap`` per
    problem, greedily by marginal gain per sample; problems below ``min_gain`` get none."""
    extra = [0] * len(problems)
    heap: list[tuple[float, int]] = []

    def push(i: int) -> None:
        if extra[i] + CHUNK > cap:
            return
        gain = marginal_gain(problems[i], extra[i], cap)
        if gain >= min_gain:
            heapq.heappush(heap, (-gain, i))  # ties: the lower index first (deterministic)

    for i in range(len(problems)):
        push(i)
    left = budget
    while heap and left >= CHUNK:
        _, i = heapq.heappop(heap)
        extra[i] += CHUNK
        left -= CHUNK
        push(i)
    return extra


def expected_gain(problems: Sequence[ProblemVotes], extra: Sequence[int]) -> float:
    """Sum over problems of the expected rise in P(correct majority) from ``extra``."""
    return sum(value(p, k) - value(p, 0) for p, k in zip(problems, extra, strict=True))
