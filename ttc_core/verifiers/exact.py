"""Exact match: extract the final answer, normalize it, compare strings with the reference."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ttc_core.verifiers.answers import extract_answer, normalize_answer
from ttc_core.verifiers.base import Candidate, Verdict

__all__ = [
    "ExactVerifier",
    "compare_verdict",
    "no_answer_verdict",
    "normalize_reference",
    "shorten",
]

_FEEDBACK_CHARS = 200


def shorten(s: str, limit: int = _FEEDBACK_CHARS) -> str:
    """``s`` cut to ``limit`` characters (with an ellipsis), for feedback messages."""
    return s if len(s) <= limit else s[: limit - 1] + "…"


def no_answer_verdict(reference: str | None, pattern: re.Pattern[str] | None) -> Verdict:
    """The verdict for an output that states no answer."""
    how = f"matching {shorten(pattern.pattern, 80)!r}" if pattern is not None else ""
    feedback = " ".join(p for p in ("no final answer", how, "found in the output") if p)
    if reference is None:
        return Verdict(score=None, answer=None, correct=None, feedback=feedback)
    return Verdict(score=0.0, answer=None, correct=False, feedback=feedback)


def compare_verdict(answer: str, reference: str | None, correct: bool | None) -> Verdict:
    """The verdict for a normalized ``answer`` judged ``correct`` against ``reference``."""
    if reference is None or correct is None:
        return Verdict(score=None, answer=answer, correct=None, feedback=None)
    if correct:
        return Verdict(score=1.0, answer=answer, correct=True, feedback=None)
    return Verdict(
        score=0.0,
        answer=answer,
        correct=False,
        feedback=f"expected {shorten(reference)}, got {shorten(answer)}",
    )


class ExactVerifier:
    """Normalized string equality of the extracted answer with the reference.

    Score 1.0 / 0.0 with a reference; without one the answer is still extracted and the
    score is ``None``.
    """

    kind: str = "exact"
    needs_reference: bool = True

    def __init__(self, reference: str | None, pattern: re.Pattern[str] | None = None) -> None:
        self.pattern = pattern
        self.reference = reference
        self.reference_norm = normalize_reference(reference)

    def judge(self, text: str) -> Verdict:
        """The verdict for one output (synchronous, pure)."""
        raw = extract_answer(text, self.pattern)
        answer = normalize_answer(raw) if raw is not None else ""
        if not answer:
            return no_answer_verdict(self.reference_norm, self.pattern)
        if self.reference_norm is None:
            return compare_verdict(answer, None, None)
        return compare_verdict(answer, self.reference_norm, answer == self.reference_norm)

    async def verify(self, candidates: Sequence[Candidate]) -> list[Verdict]:
        return [self.judge(c.text) for c in candidates]


def normalize_reference(reference: str | None) -> str | None:
    """The normalized reference; a blank one counts as no reference."""
    if reference is None:
        return None
    return normalize_answer(reference) or None
