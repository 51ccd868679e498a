"""Exact and regex verifiers on realistic model outputs."""

from __future__ import annotations

import asyncio
import re

import pytest

from ttc_core.verifiers import (
    Candidate,
    ExactVerifier,
    RegexVerifier,
    Verdict,
    Verifier,
)

PROMPT = "Natalia sold clips to 48 of her friends in April, and then half as many in May..."

GOOD = (
    "Natalia sold 48/2 = 24 clips in May.\n"
    "Altogether she sold 48 + 24 = 72 clips.\n"
    "The final answer is $\\boxed{72}$.\nANSWER: 72"
)
WRONG = "In May she sold 48 * 2 = 96, so 48 + 96 = 144.\nANSWER: 144"
THOUSANDS = "The total is 1,000 dollars.\nANSWER: 1,000"
NOTHING = "I am not sure how to solve this problem."


def run(verifier: Verifier, *texts: str) -> list[Verdict]:
    return asyncio.run(verifier.verify([Candidate(prompt=PROMPT, text=t) for t in texts]))


def test_exact_with_reference() -> None:
    good, wrong, nothing = run(ExactVerifier("72"), GOOD, WRONG, NOTHING)
    assert good == Verdict(score=1.0, answer="72", correct=True, feedback=None)
    assert wrong == Verdict(score=0.0, answer="144", correct=False, feedback="expected 72, got 144")
    assert nothing.score == 0.0
    assert nothing.correct is False
    assert nothing.answer is None
    assert nothing.feedback is not None and "no final answer" in nothing.feedback


def test_exact_normalizes_both_sides() -> None:
    (thousands,) = run(ExactVerifier("1000"), THOUSANDS)
    assert thousands.correct is True
    assert thousands.answer == "1000"
    (dollars,) = run(ExactVerifier("$1,000.00"), THOUSANDS)
    assert dollars.correct is True
    (letter,) = run(ExactVerifier("B"), "The correct option is (B).\nAnswer: (B)")
    assert letter.correct is True
    assert letter.answer == "b"


def test_exact_without_reference_still_extracts() -> None:
    good, nothing = run(ExactVerifier(None), GOOD, NOTHING)
    assert good == Verdict(score=None, answer="72", correct=None, feedback=None)
    assert nothing.score is None
    assert nothing.correct is None
    assert nothing.answer is None


def test_blank_reference_counts_as_none() -> None:
    (good,) = run(ExactVerifier("  "), GOOD)
    assert good.correct is None
    assert good.score is None


def test_exact_with_pattern() -> None:
    verifier = ExactVerifier("72", re.compile(r"ANSWER:\s*(\S+)"))
    good, boxed_only = run(verifier, GOOD, "So the answer is \\boxed{72}.")
    assert good.correct is True
    assert boxed_only.correct is False
    assert boxed_only.feedback is not None and "ANSWER" in boxed_only.feedback


def test_batch_order_and_length() -> None:
    texts = [f"ANSWER: {i}" for i in range(50)]
    verdicts = run(ExactVerifier("7"), *texts)
    assert [v.answer for v in verdicts] == [str(i) for i in range(50)]
    assert [v.correct for v in verdicts] == [i == 7 for i in range(50)]
    assert run(ExactVerifier("7")) == []


def test_feedback_is_bounded() -> None:
    (verdict,) = run(ExactVerifier("1"), "ANSWER: " + "9" * 5000)
    assert verdict.feedback is not None
    assert len(verdict.feedback) < 500


def test_regex_verifier() -> None:
    verifier = RegexVerifier(r"ANSWER:\s*(\S+)", "72")
    good, wrong, nothing = run(verifier, GOOD, WRONG, NOTHING)
    assert (good.score, good.answer, good.correct) == (1.0, "72", True)
    assert (wrong.score, wrong.answer, wrong.correct) == (0.0, "144", False)
    assert wrong.feedback == "expected 72, got 144"
    assert (nothing.score, nothing.answer, nothing.correct) == (0.0, None, False)
    assert verifier.kind == "regex"


def test_regex_last_match_wins() -> None:
    verifier = RegexVerifier(re.compile(r"ANSWER:\s*(\S+)"), "2")
    (verdict,) = run(verifier, "ANSWER: 1\nno wait\nANSWER: 2")
    assert verdict.correct is True


def test_regex_without_reference() -> None:
    (verdict,) = run(RegexVerifier(r"=\s*(\d+)"), "a = 3, b = 4")
    assert verdict == Verdict(score=None, answer="4", correct=None, feedback=None)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"ANSWER: \S+", "capture group"),
        (r"ANSWER: (\S+", "does not compile"),
        ("(a)" * 300, "longer than 500"),
    ],
)
def test_regex_rejects_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RegexVerifier(pattern, "1")


def test_verifiers_satisfy_protocol() -> None:
    assert isinstance(ExactVerifier(None), Verifier)
    assert isinstance(RegexVerifier(r"(\d)"), Verifier)
