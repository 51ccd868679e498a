"""The step-scorer extension point: score *partial* solutions, step by step.

A step scorer gets a batch of :class:`PartialSolution` (the question and the steps written
so far) and returns one :class:`StepScores` per item, in the same order. Step-level search
(beam search, DVTS, MCTS) ranks paths by :meth:`StepScores.aggregate`.

Two shapes of answer:

* a process reward model scores every step: ``step_scores`` holds one probability in
  [0, 1] per step of the path (the first step first) and ``path_value`` is ``None``;
* a judge scores the whole partial solution at once: ``path_value`` is that value and
  ``step_scores`` is ``[path_value]``; aggregation returns ``path_value`` whatever ``how``.

Rules for implementations:

* ``score`` is batched and async; network work goes through the shared
  ``httpx.AsyncClient`` (or an :class:`~ttc_core.inference.client.InferenceClient`).
* Raise :class:`ScorerError` when the scorer cannot work (a server that stays down, a
  malformed response); the message says what was wrong, since the job fails with it.
  Raise ``ValueError`` for a caller error (a path with no steps given to a PRM).
* Keep no per-job state beyond what the constructor receives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args, runtime_checkable

from ttc_core.errors import TTCError

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "PartialSolution",
    "ScorerError",
    "StepScorer",
    "StepScores",
    "aggregate",
]

#: How a path's step scores become one number (search-and-learn's ``agg_strategy``, + mean).
Aggregation = Literal["last", "min", "prod", "mean"]
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)


class ScorerError(TTCError):
    """The step scorer could not score the batch (not: a step was bad)."""


@dataclass(frozen=True, slots=True)
class PartialSolution:
    """A question and the reasoning steps written so far (possibly a finished solution)."""

    question: str
    steps: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.steps, tuple):  # accept a list, keep the object hashable
            object.__setattr__(self, "steps", tuple(self.steps))


@dataclass(frozen=True, slots=True)
class StepScores:
    """A scorer's judgement of one partial solution.

    ``step_scores``: one score in [0, 1] per step (PRMs), or ``[path_value]`` (judges).
    ``path_value``: set by scorers that judge the whole path at once; it *is* the path's
    aggregate.
    """

    step_scores: list[float]
    path_value: float | None = None

    def aggregate(self, how: Aggregation) -> float:
        """The path's score: ``path_value`` when set, else :func:`aggregate` of the steps."""
        if self.path_value is not None:
            return self.path_value
        return aggregate(self.step_scores, how)

    @property
    def last(self) -> float | None:
        """The score of the newest step (the path value for judges), ``None`` if empty."""
        return self.step_scores[-1] if self.step_scores else self.path_value


def aggregate(step_scores: Sequence[float], how: Aggregation) -> float:
    """One number for a path from its step scores (search-and-learn's definitions).

    ``last``: the newest step's score (the PRM's estimate for the whole prefix);
    ``min``: the weakest step; ``prod``: the product (the chance that every step is right,
    if independent); ``mean``: the arithmetic mean.

    Raises ``ValueError`` for an empty sequence (a path without steps has no score) or an
    unknown ``how``.
    """
    if not step_scores:
        raise ValueError("no step scores to aggregate (a path without steps has no score)")
    if how == "last":
        return float(step_scores[-1])
    if how == "min":
        return float(min(step_scores))
    if how == "prod":
        return float(math.prod(step_scores))
    if how == "mean":
        return math.fsum(step_scores) / len(step_scores)
    raise ValueError(f"unknown aggregation {how!r}; expected one of {', '.join(AGGREGATIONS)}")


@runtime_checkable
class StepScorer(Protocol):
    """Scores batches of partial solutions. See the module docstring for the rules."""

    #: The spec ``kind`` this scorer was built from: ``"prm"`` or ``"llm_judge"``.
    kind: str

    async def score(self, items: Sequence[PartialSolution]) -> list[StepScores]:
        """One :class:`StepScores` per item, in the same order."""
        ...
