"""Adaptive stopping for voting: sample in rounds, stop once the vote is settled.

Adaptive-Consistency (Aggarwal et al., 2023) stops self-consistency as soon as the
posterior probability that the current leader stays the leader reaches a confidence
threshold. Two rules are offered, both deterministic given the vote counts:

``beta``
    The paper's rule between the top two answers: with ``v1 >= v2`` votes and a uniform
    prior, the leader's share among the two is ``x ~ Beta(v1 + 1, v2 + 1)`` and the rule
    computes ``P(x > 1/2)``. For integer counts this is exact in closed form:
    ``P(x > 1/2) = P(Binomial(v1 + v2 + 1, 1/2) <= v1)``.
``dirichlet``
    Over every answer seen: ``theta ~ Dirichlet(c_1 + 1, ..., c_k + 1)`` and the rule
    estimates ``P(theta_leader is the largest)`` with a seeded Monte-Carlo estimate
    (:data:`DIRICHLET_DRAWS` draws from a generator seeded by the sorted counts, so the
    same counts always give the same number).

Example: 4 votes for one answer and none for another give ``P = 1 - 2**-5 = 0.969``;
at ``confidence=0.95`` that stops after 5 agreeing samples (``Beta(5, 1)``), never after 4.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Monte-Carlo draws of the Dirichlet rule (standard error <= 0.008 at any probability).
DIRICHLET_DRAWS = 4000


class AdaptiveParams(BaseModel):
    """``adaptive`` of a voting strategy: rounds of ``batch`` samples until settled."""

    model_config = ConfigDict(extra="forbid")

    rule: Literal["beta", "dirichlet"] = Field(
        default="beta", description="posterior of the stopping rule"
    )
    confidence: float = Field(
        default=0.95, ge=0.5, le=0.9999, description="stop when P(leader stays) >= this"
    )
    min_samples: int = Field(default=4, ge=1, le=4096, description="samples before any stop")
    batch: int = Field(default=2, ge=1, le=1024, description="samples per round")


def beta_leader_probability(leader: int, runner_up: int) -> float:
    """``P(x > 1/2)`` for ``x ~ Beta(leader + 1, runner_up + 1)`` (exact, integer votes)."""
    if leader < 0 or runner_up < 0:
        raise ValueError("votes cannot be negative")
    trials = leader + runner_up + 1
    tail = sum(math.comb(trials, k) for k in range(leader + 1))
    return tail / 2**trials


def dirichlet_leader_probability(counts: Sequence[int], draws: int = DIRICHLET_DRAWS) -> float:
    """``P(theta_0 is the largest)`` for ``theta ~ Dirichlet(counts + 1)`` where
    ``counts[0]`` is the leader's; a seeded Monte-Carlo estimate (same counts, same value)."""
    if not counts:
        return 0.0
    if len(counts) == 1:
        return 1.0
    ordered = sorted(counts, reverse=True)
    rng = random.Random("dirichlet:" + ",".join(str(c) for c in ordered))
    wins = 0
    for _ in range(draws):
        gammas = [rng.gammavariate(c + 1, 1.0) for c in ordered]
        if gammas[0] >= max(gammas[1:]):
            wins += 1
    return wins / draws


@dataclass(frozen=True)
class StopDecision:
    """Whether a vote is settled, with what the rule saw."""

    settled: bool
    probability: float
    rule: str
    confidence: float
    samples: int
    counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "confidence": self.confidence,
            "probability": round(self.probability, 6),
            "samples": self.samples,
            "counts": self.counts,
            "settled": self.settled,
        }


def decide(counts: dict[str, int], samples: int, params: AdaptiveParams) -> StopDecision:
    """Apply the stopping rule to vote counts (answers in leader-first order).

    ``samples`` counts every sample drawn (those without an answer too): ``min_samples``
    is about what was spent, the posterior about what voted.
    """
    votes = sorted(counts.values(), reverse=True)
    if params.rule == "beta":
        leader = votes[0] if votes else 0
        runner_up = votes[1] if len(votes) > 1 else 0
        probability = beta_leader_probability(leader, runner_up) if votes else 0.0
    else:
        probability = dirichlet_leader_probability(votes)
    settled = samples >= params.min_samples and bool(votes) and probability >= params.confidence
    return StopDecision(settled, probability, params.rule, params.confidence, samples, dict(counts))
