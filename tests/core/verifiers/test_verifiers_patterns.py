"""Tenant patterns are matched by RE2: a catastrophic-backtracking pattern ends at once."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import ValidationError

from ttc_core.engine.expansion import is_final_step
from ttc_core.verifiers import Candidate, RegexVerifier, parse_verifier_spec
from ttc_core.verifiers.answers import extract_answer
from ttc_core.verifiers.patterns import TenantPattern

#: The pattern time bound these tests hold matching to (RE2 takes microseconds; Python's
#: ``re`` takes minutes on the same input).
BOUND_S = 1.0
EVIL = "(a+)+$"
TEXT = "a" * 40 + "!"


def test_catastrophic_pattern_ends_within_the_bound() -> None:
    pattern = TenantPattern(EVIL)
    started = time.monotonic()
    assert pattern.search(TEXT) is None
    assert extract_answer(TEXT * 1000, pattern) is None
    assert time.monotonic() - started < BOUND_S


def test_regex_verifier_with_a_catastrophic_pattern() -> None:
    verifier = RegexVerifier("(?:a+)+(!)$", reference="!")
    started = time.monotonic()
    (verdict,) = asyncio.run(verifier.verify([Candidate(prompt="p", text=TEXT)]))
    assert time.monotonic() - started < BOUND_S
    assert verdict.correct is True
    miss = RegexVerifier("(?:a+)+(b)$", reference="b")
    (verdict,) = asyncio.run(miss.verify([Candidate(prompt="p", text=TEXT)]))
    assert verdict.correct is False
    assert verdict.feedback is not None and "no final answer matching" in verdict.feedback


def test_step_final_check_uses_the_bounded_pattern() -> None:
    started = time.monotonic()
    assert is_final_step(TEXT, TenantPattern(EVIL)) is False
    assert is_final_step("x ANSWER: 4", TenantPattern("ANSWER: (\\d+)")) is True
    assert time.monotonic() - started < BOUND_S


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?<=x)y", "lookarounds"),
        ("(a)\\1", "backreferences"),
        ("(unclosed", "missing )"),
    ],
)
def test_patterns_re2_cannot_compile_are_refused_naming_the_field(
    pattern: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as info:
        parse_verifier_spec({"kind": "regex", "pattern": pattern})
    (error,) = info.value.errors()
    assert error["loc"][-1] == "pattern"
    assert reason in str(error["msg"])


def test_python_syntax_that_re2_shares_still_works() -> None:
    pattern = TenantPattern(r"(?i)answer:\s*(?P<value>[0-9]+)")
    assert extract_answer("Answer: 12 then ANSWER: 34", pattern) == "34"
