"""Answer extraction and normalization tables."""

from __future__ import annotations

import re

import pytest

from ttc_core.verifiers import extract_answer, last_boxed, normalize_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The final answer is $\\boxed{72}$.\nANSWER: 72", "72"),
        ("First \\boxed{1}, then on reflection \\boxed{2}.", "2"),
        ("So $\\boxed{\\frac{3}{4}}$", "\\frac{3}{4}"),
        ("nested \\boxed{\\left\\{ 1, 2 \\right\\}}", "\\left\\{ 1, 2 \\right\\}"),
        # A truncated final box falls back to the last complete one.
        ("\\boxed{5} and then \\boxed{\\frac{1}{", "5"),
        ("\\fbox{7}", "7"),
        ("Reasoning...\nANSWER: 41\n", "41"),
        ("Answer: B", "B"),
        ("**Answer:** 42.", "42."),
        ("The answer is 3/4.", "3/4."),
        ("The final answer is: $17$", "$17$"),
        ("answer is 1 ... wait, ANSWER: 2", "2"),
        ("Answer:\n17", "17"),
        ("I think 3 apples cost 1,000 dollars", "1,000"),
        ("x - 5 = -7, so x = -2", "-2"),
        ("The probability is 3/4", "3/4"),
        ("half of it: .5", ".5"),
        ("It costs 2.50 per item", "2.50"),
        ("H2O and CO2", None),
        ("I don't know.", None),
        ("", None),
    ],
)
def test_extract_answer_without_pattern(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        ("ANSWER: 1\nANSWER: 2", r"ANSWER:\s*(\S+)", "2"),
        ("a=1 b=2", r"(\w)=(\d)", "b"),
        ("no match here", r"ANSWER:\s*(\S+)", None),
        ("a1b2", r"\d", "2"),  # no group: the whole last match
        ("x: ", r"x:(\s*)", None),  # an empty group is no answer
        ("k=", r"k=(\d)?", None),  # an unmatched optional group is no answer
    ],
)
def test_extract_answer_with_pattern(text: str, pattern: str, expected: str | None) -> None:
    assert extract_answer(text, re.compile(pattern)) == expected


def test_pattern_overrides_boxed() -> None:
    text = "\\boxed{1}\nFINAL=9"
    assert extract_answer(text, re.compile(r"FINAL=(\d+)")) == "9"


def test_last_boxed_unbalanced_only() -> None:
    assert last_boxed("\\boxed{1") is None
    assert last_boxed("no box") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  72  ", "72"),
        ("$72$", "72"),
        ("$72$.", "72"),
        ("72.", "72"),
        ("\\(72\\)", "72"),
        ("\\boxed{72}", "72"),
        ("**72**", "72"),
        ("1,000", "1000"),
        ("1,234,567.50", "1234567.5"),
        ("1{,}000", "1000"),
        ("$1,000", "1000"),
        ("5.0", "5"),
        ("5.", "5"),
        ("0.50", "0.5"),
        (".5", "0.5"),
        ("007", "7"),
        ("-0", "0"),
        ("-0.00", "0"),
        ("+5", "5"),
        ("-3.10", "-3.1"),
        ("123456789012345678901234567890.000", "123456789012345678901234567890"),
        ("(B)", "b"),
        ("B", "b"),
        ("B)", "b"),
        ("\\text{(C)}", "c"),
        ("(D) 42", "d"),
        ("Yes", "yes"),
        ("\\text{ New  York }", "new york"),
        ("\\textbf{yes}", "yes"),
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("50\\%", "50%"),
        ("x = 5", "x = 5"),
        ("1, 2, 3", "1, 2, 3"),
        ("\\frac{3}{4}", "\\frac{3}{4}"),
        ("$x$ and $y$", "$x$ and $y$"),
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_normalize_is_idempotent() -> None:
    for raw in ["$1,000.50$.", "(B)", "\\text{Yes}", "-0.0", "\\frac{3}{4}", "x = 5"]:
        once = normalize_answer(raw)
        assert normalize_answer(once) == once


def test_extract_is_fast_on_long_outputs() -> None:
    text = ("step {1} with 12 and \\boxed{" * 2000) + "\nANSWER: 5"
    assert extract_answer(text) == "5"
