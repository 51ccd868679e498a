"""Game of 24: the output's expression must use the reference's numbers once each and equal 24.

The reference is the puzzle's numbers, e.g. ``"4 4 6 8"`` (spaces or commas between them).
The expression is the output's final answer (:func:`extract_answer`: the last ``\\boxed{}``,
else the last ``ANSWER:`` line). The part before ``=`` is used (``(8 - 4) * (4 + 2) = 24``;
for ``24 = ...`` the other side). LaTeX and typographic operators are rewritten
(``\\times``, ``\\cdot``, ``\\div``, the Unicode multiplication, division and minus
signs, ``\\frac{a}{b}``, ``\\left(``, ``[ ]``, ``{ }``).

The expression is parsed with :mod:`ast` (never evaluated by Python) and may contain only
integer literals, ``+ - * /`` and parentheses: names, calls, attributes, powers (``**``,
``^``), unary signs, floats and anything else make the answer wrong, with feedback. It is
evaluated exactly with :class:`fractions.Fraction` (division by zero: wrong). The verdict is
1.0 when the literals are the reference's numbers as a multiset and the value is 24, else
0.0 with feedback such as ``"uses 4 4 6 instead of 4 4 6 8"`` or ``"evaluates to 22"``.
``answer`` is the expression with its spaces removed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from fractions import Fraction

from ttc_core.verifiers.answers import extract_answer
from ttc_core.verifiers.base import Candidate, Verdict, VerifierError
from ttc_core.verifiers.exact import shorten

__all__ = ["Game24Verifier", "check_24", "parse_numbers"]

TARGET = Fraction(24)
#: Longer expressions are refused without parsing.
MAX_EXPRESSION_CHARS = 200
#: At most this many numbers in a puzzle.
MAX_NUMBERS = 12

_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_REPLACEMENTS = (
    ("\\left", ""),
    ("\\right", ""),
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("\u00d7", "*"),  # multiplication sign
    ("\u22c5", "*"),  # dot operator
    ("\u00f7", "/"),  # division sign
    ("\u2212", "-"),  # minus sign
    ("\u2013", "-"),  # en dash
    ("[", "("),
    ("]", ")"),
    ("{", "("),
    ("}", ")"),
    ("$", ""),
    ("\\(", ""),
    ("\\)", ""),
    ("\\,", ""),
    ("\\ ", " "),
)
_BARE_NUMBER = re.compile(r"^\s*\(?\s*-?\d+(?:\.\d+)?\s*\)?\s*$")
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def parse_numbers(reference: str) -> tuple[int, ...]:
    """The puzzle's numbers from a reference like ``"4 4 6 8"`` or ``"4, 4, 6, 8"``."""
    parts = [p for p in re.split(r"[\s,;]+", reference.strip()) if p]
    if not parts or len(parts) > MAX_NUMBERS or not all(re.fullmatch(r"\d{1,6}", p) for p in parts):
        raise ValueError(
            "a game24 reference is the puzzle's numbers, e.g. '4 4 6 8'; "
            f"got {shorten(reference)!r}"
        )
    return tuple(int(p) for p in parts)


def _fmt(value: Fraction) -> str:
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def _clean(expr: str) -> str:
    """Plain Python arithmetic from an answer as models write it."""
    s = expr
    for _ in range(4):  # \frac{a}{b}, innermost first
        new = _FRAC.sub(r"(\1)/(\2)", s)
        if new == s:
            break
        s = new
    for old, new in _REPLACEMENTS:
        s = s.replace(old, new)
    sides = [side.strip() for side in s.split("=")]
    # "(8 - 4) * 6 = 24" -> the left side; "24 = (8 - 4) * 6" -> the right side.
    if len(sides) > 1 and _BARE_NUMBER.match(sides[0]) and not _BARE_NUMBER.match(sides[1]):
        return sides[1]
    return sides[0].rstrip(".").strip()


class _Rejected(Exception):
    """The expression is not plain arithmetic on integers (message: what was found)."""


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return "a function call"
    if isinstance(node, ast.Attribute):
        return "attribute access"
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return "** (powers are not allowed)"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
        return "^ (powers are not allowed)"
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    if isinstance(node, ast.UnaryOp):
        return "a unary sign (each number is used as given)"
    if isinstance(node, ast.Constant):
        return f"the non-integer {node.value!r}"
    return f"a {type(node).__name__}"


def _evaluate(node: ast.AST, leaves: list[int]) -> Fraction:
    """The exact value of ``node``; the integer literals are appended to ``leaves``."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        leaves.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left = _evaluate(node.left, leaves)
        right = _evaluate(node.right, leaves)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if right == 0:
            raise ZeroDivisionError
        return left / right
    raise _Rejected(_describe(node))


def check_24(expr: str, numbers: Sequence[int]) -> tuple[bool, str | None]:
    """Whether ``expr`` uses exactly ``numbers`` (as a multiset) and equals 24.

    Returns ``(correct, feedback)``; feedback says why not (``None`` when correct).
    """
    s = _clean(expr)
    if not s:
        return False, "no expression found in the answer"
    if len(s) > MAX_EXPRESSION_CHARS:
        return False, f"the expression is longer than {MAX_EXPRESSION_CHARS} characters"
    try:
        tree = ast.parse(s, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False, f"not an arithmetic expression: {shorten(s, 80)!r}"
    leaves: list[int] = []
    try:
        value = _evaluate(tree.body, leaves)
    except _Rejected as exc:
        return False, f"only + - * / on integers and parentheses are allowed, found {exc}"
    except ZeroDivisionError:
        return False, "division by zero"
    except RecursionError:
        return False, "the expression is nested too deeply"
    wanted = sorted(numbers)
    problems: list[str] = []
    if sorted(leaves) != wanted:
        used = " ".join(str(n) for n in sorted(leaves))
        problems.append(f"uses {used} instead of {' '.join(str(n) for n in wanted)}")
    if value != TARGET:
        problems.append(f"evaluates to {_fmt(value)}")
    if problems:
        return False, "; ".join(problems)
    return True, None


class Game24Verifier:
    """Checks a Game of 24 answer against the puzzle's numbers (the reference).

    Score 1.0 / 0.0 with a reference; without one the expression is still extracted (for
    voting) and the score is ``None``. A reference that is not a list of integers raises
    :class:`VerifierError` (the job cannot be verified).
    """

    kind: str = "game24"
    needs_reference: bool = True

    def __init__(self, reference: str | None) -> None:
        self.reference = reference
        try:
            self.numbers = parse_numbers(reference) if reference is not None else None
        except ValueError as exc:
            raise VerifierError(str(exc)) from None

    def judge(self, text: str) -> Verdict:
        """The verdict for one output (synchronous, pure, fast)."""
        raw = extract_answer(text)
        if raw is None or not raw.strip():
            missing = "no final answer found in the output"
            if self.numbers is None:
                return Verdict(score=None, answer=None, correct=None, feedback=missing)
            return Verdict(score=0.0, answer=None, correct=False, feedback=missing)
        answer: str | None = re.sub(r"\s+", "", _clean(raw)) or None
        if self.numbers is None:
            return Verdict(score=None, answer=answer, correct=None, feedback=None)
        correct, feedback = check_24(raw, self.numbers)
        return Verdict(
            score=1.0 if correct else 0.0, answer=answer, correct=correct, feedback=feedback
        )

    async def verify(self, candidates: Sequence[Candidate]) -> list[Verdict]:
        return [self.judge(c.text) for c in candidates]
