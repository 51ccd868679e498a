"""The verifier extension point.

A verifier scores finished samples. It gets a batch of :class:`Candidate` (the prompt and
the sample's text) and returns one :class:`Verdict` per candidate, in the same order.
Strategies rank by ``Verdict.score`` (higher is better), vote over ``Verdict.answer`` (the
normalized extracted answer), report ``Verdict.correct`` and hand ``Verdict.feedback`` to a
refine step.

Rules for implementations:

* ``verify`` is batched and async; do CPU-heavy work off the event loop
  (``asyncio.to_thread``) and network work with the shared ``httpx.AsyncClient``.
* Never raise because of what the *model* wrote: an output without an answer, or with
  garbage, is a verdict (score 0.0 when a reference exists, with ``feedback``).
  Raise :class:`VerifierError` only when the verifier itself cannot work (a reward server
  that stays down, a malformed server response).
* Be deterministic for the same inputs; keep no per-job state beyond what the constructor
  receives (a verifier is rebuilt for each batch).

Example, a verifier that prefers short answers::

    class ShortestVerifier:
        kind = "shortest"
        needs_reference = False

        async def verify(self, candidates: Sequence[Candidate]) -> list[Verdict]:
            out = []
            for c in candidates:
                raw = extract_answer(c.text)
                out.append(
                    Verdict(
                        score=1.0 / (1 + len(c.text)),
                        answer=normalize_answer(raw) if raw is not None else None,
                        correct=None,
                        feedback=None,
                    )
                )
            return out

To make it selectable from the job JSON, add a spec model to ``spec.py`` (a new ``kind``
literal in the ``VerifierSpec`` union) and a builder to ``registry._BUILDERS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Candidate", "Verdict", "Verifier", "VerifierError"]


class VerifierError(Exception):
    """The verifier could not score the batch (not: the model's answer was bad)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One finished sample to verify."""

    prompt: str
    text: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """A verifier's judgement of one candidate.

    ``score``: higher is better; 1.0 / 0.0 for reference checks, the reward (a probability)
    for reward models, ``None`` when the verifier has nothing to score against.
    ``answer``: the normalized extracted answer, ``None`` when the output states none.
    ``correct``: agreement with the reference, ``None`` when there is no reference.
    ``feedback``: why it failed, e.g. ``"expected 42, got 41"``; ``None`` otherwise.
    """

    score: float | None
    answer: str | None
    correct: bool | None
    feedback: str | None = None


@runtime_checkable
class Verifier(Protocol):
    """Scores batches of candidates. See the module docstring for the rules."""

    #: The spec ``kind`` this verifier was built from, e.g. ``"math"``.
    kind: str
    #: Whether scores need a reference answer. Without one such a verifier still extracts
    #: answers (enough for voting) but every score is ``None``.
    needs_reference: bool

    async def verify(self, candidates: Sequence[Candidate]) -> list[Verdict]:
        """One verdict per candidate, in the same order."""
        ...
