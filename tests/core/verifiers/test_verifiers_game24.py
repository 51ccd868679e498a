"""Game of 24 verifier: exact arithmetic on the AST, never ``eval``."""

from __future__ import annotations

import asyncio
import time

import pytest

from ttc_core.verifiers import (
    Candidate,
    Game24Spec,
    Game24Verifier,
    VerifierError,
    build_verifier,
    parse_verifier_spec,
)
from ttc_core.verifiers.game24 import check_24, parse_numbers

NUMBERS = (4, 4, 6, 8)
ONLY = "only + - * / on integers and parentheses are allowed, found"


@pytest.mark.parametrize(
    "expr",
    [
        "(4 + 8) * (6 - 4)",
        "(4+8)*(6-4) = 24",
        "24 = (4 + 8) * (6 - 4)",
        "(6 - 4) * (8 + 4) = 12 * 2 = 24",
        "4 * (8 - 6 + 4)",
        "[(4 + 8)] * {6 - 4}",
        "(4 + 8) \\times (6 - 4)",
        "(4 + 8) \\cdot (6 - 4)",
        "\\left(4 + 8\\right) \\times \\left(6 - 4\\right)",
        "(4 + 8) \u00d7 (6 \u2212 4)",
        "$(4+8)*(6-4)$",
        "((((4)))) * (8 - 6 + 4)",
    ],
)
def test_valid(expr: str) -> None:
    assert check_24(expr, NUMBERS) == (True, None)


def test_valid_with_fractions_on_the_way() -> None:
    # 3 3 8 8: 8 / (3 - 8/3) = 24 needs exact fractions
    assert check_24("8 / (3 - 8 / 3)", (3, 3, 8, 8)) == (True, None)
    # 1 3 4 6: 6 / (1 - 3/4) = 24
    assert check_24("6 / (1 - 3 / 4)", (1, 3, 4, 6)) == (True, None)
    assert check_24("\\frac{6}{1 - \\frac{3}{4}}", (1, 3, 4, 6)) == (True, None)
    assert check_24("6 \\div (1 - 3 \u00f7 4)", (1, 3, 4, 6)) == (True, None)


@pytest.mark.parametrize(
    ("expr", "feedback"),
    [
        ("4 * 6", "uses 4 6 instead of 4 4 6 8"),
        ("(4 + 4) * 6 / 2", "uses 2 4 4 6 instead of 4 4 6 8"),
        ("4 * 6 * 8 / 8 + 4 - 4", "uses 4 4 4 6 8 8 instead of 4 4 6 8"),
        ("4 + 4 + 6 + 8", "evaluates to 22"),
        ("4 / 6 + 4 + 8", "evaluates to 38/3"),
        ("4 * 6 + 8", "uses 4 6 8 instead of 4 4 6 8; evaluates to 32"),
        ("8 / (4 - 4) + 6", "division by zero"),
        ("6 * 4 + 8 / (4 - 4)", "division by zero"),
        ("8 * 6 / (4 - 4 * 1)", "division by zero"),
    ],
)
def test_wrong(expr: str, feedback: str) -> None:
    assert check_24(expr, NUMBERS) == (False, feedback)


@pytest.mark.parametrize(
    ("expr", "found"),
    [
        ("__import__('os').system('true')", "a function call"),
        ("max(4, 4, 6, 8)", "a function call"),
        ("4(4 + 6) + 8", "a function call"),
        ("(4).real * 6", "attribute access"),
        ("x * 4 + 4 + 6 + 8", "the name 'x'"),
        ("four * six", "the name 'four'"),
        ("2 ** 10 ** 10 ** 10", "** (powers are not allowed)"),
        ("(4 + 4) ** 8 - 6", "** (powers are not allowed)"),
        ("4 ^ 4 + 6 + 8", "^ (powers are not allowed)"),
        ("-4 + 4 + 6 * 8", "a unary sign (each number is used as given)"),
        ("4.0 * 6 + 4 - 4", "the non-integer 4.0"),
        ("True * 24", "the non-integer True"),
        ("'24'", "the non-integer '24'"),
        ("4 % 4 + 6 * 8", "the operator Mod"),
        ("4 // 4 * 6 * 8", "the operator FloorDiv"),
        ("[4, 4, 6, 8]", "a Tuple"),  # brackets are read as parentheses
        ("(4, 4)", "a Tuple"),
        ("lambda: 24", "a Lambda"),
        ("4 if 6 else 8", "a IfExp"),
        ("4 < 6", "a Compare"),
    ],
)
def test_rejected(expr: str, found: str) -> None:
    correct, feedback = check_24(expr, NUMBERS)
    assert not correct
    assert feedback == f"{ONLY} {found}"


def test_deep_nesting_is_fine() -> None:
    expr = "(" * 90 + "4 + 8" + ")" * 90 + " * (6 - 4)"
    assert check_24(expr, NUMBERS) == (True, None)


def test_huge_power_is_rejected_quickly() -> None:
    started = time.perf_counter()
    assert check_24("9 ** 9 ** 9 ** 9", (9, 9, 9, 9))[0] is False
    assert time.perf_counter() - started < 0.1


@pytest.mark.parametrize(
    ("expr", "feedback"),
    [
        ("", "no expression found in the answer"),
        ("4 4 6 8", "not an arithmetic expression: '4 4 6 8'"),
        ("(4 + 8) * (6 - 4", "not an arithmetic expression"),
        ("import os", "not an arithmetic expression"),
        ("4 + " * 60 + "4", "the expression is longer than 200 characters"),
        ("4 +* 6", "not an arithmetic expression"),
    ],
)
def test_not_expressions(expr: str, feedback: str) -> None:
    correct, got = check_24(expr, NUMBERS)
    assert not correct
    assert got is not None and got.startswith(feedback)


def test_parse_numbers() -> None:
    assert parse_numbers("4 4 6 8") == (4, 4, 6, 8)
    assert parse_numbers(" 1, 2,3 ;4 ") == (1, 2, 3, 4)
    for bad in ("", "a b c d", "4 4 6 8.5", "-4 4 6 8", "1 " * 13):
        with pytest.raises(ValueError, match="game24 reference"):
            parse_numbers(bad)


def verify(reference: str | None, *texts: str) -> list[tuple[float | None, str | None]]:
    verifier = Game24Verifier(reference)
    verdicts = asyncio.run(verifier.verify([Candidate(prompt="4 4 6 8", text=t) for t in texts]))
    return [(v.score, v.feedback) for v in verdicts]


def test_verifier_extracts_the_answer() -> None:
    verifier = Game24Verifier("4 4 6 8")
    texts = [
        "8 - 4 = 4 (left: 4 4 6)\n4 + 4 = 8 ...\nAnswer: (4 + 8) * (6 - 4) = 24",
        "The expression is $\\boxed{(6-4)\\times(8+4)}$.",
        "**Answer:** (4 + 4 + 6 + 8)",
        "I could not find one.",
        "",
    ]
    verdicts = asyncio.run(verifier.verify([Candidate("p", t) for t in texts]))
    assert [v.score for v in verdicts] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert [v.correct for v in verdicts] == [True, True, False, False, False]
    assert verdicts[0].answer == "(4+8)*(6-4)"
    assert verdicts[0].feedback is None
    assert verdicts[2].feedback == "evaluates to 22"
    assert verdicts[3].feedback == "no final answer found in the output"
    assert verdicts[4].answer is None


def test_last_number_fallback_is_judged_not_crashed() -> None:
    ((score, feedback),) = verify("4 4 6 8", "so we get 24")
    assert score == 0.0
    assert feedback == "uses 24 instead of 4 4 6 8"


def test_without_reference_scores_none() -> None:
    verifier = Game24Verifier(None)
    (verdict,) = asyncio.run(verifier.verify([Candidate("p", "Answer: (4+8)*(6-4)")]))
    assert verdict.score is None and verdict.correct is None
    assert verdict.answer == "(4+8)*(6-4)"


def test_bad_reference_is_a_verifier_error() -> None:
    with pytest.raises(VerifierError, match="game24 reference is the puzzle's numbers"):
        Game24Verifier("twenty four")


def test_spec_and_registry() -> None:
    spec = parse_verifier_spec({"kind": "game24"})
    assert spec == Game24Spec()
    verifier = build_verifier(spec, reference="4 4 6 8", endpoints={}, http_client=None)
    assert isinstance(verifier, Game24Verifier)
    assert verifier.kind == "game24"
    assert verifier.numbers == (4, 4, 6, 8)
    with pytest.raises(ValueError, match="Extra inputs"):
        parse_verifier_spec({"kind": "game24", "pattern": "x"})
