"""Game of 24: exact arithmetic on fractions, a memoised solver, legal moves in the
Tree-of-Thoughts format (``13 - 9 = 4 (left: 4 4 10)``) and an expression checker."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

TARGET = Fraction(24)

#: A number on the board with the expression that produced it.
Item = tuple[Fraction, str]

_MOVE = re.compile(r"(\S+)\s*([-+*/])\s*(\S+)\s*=\s*(\S+)\s*\(left:\s*([^)]*)\)")


def fmt(value: Fraction) -> str:
    """``4`` or ``13/3``."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def _pairs(a: Fraction, b: Fraction) -> list[tuple[Fraction, str, Fraction, Fraction]]:
    """(x, op, y, result) for the legal ways to combine a and b (no negatives)."""
    hi, lo = (a, b) if a >= b else (b, a)
    out = [(hi, "+", lo, hi + lo), (hi, "*", lo, hi * lo), (hi, "-", lo, hi - lo)]
    if lo != 0:
        out.append((hi, "/", lo, hi / lo))
    if hi != 0 and hi != lo:
        out.append((lo, "/", hi, lo / hi))
    return out


@lru_cache(maxsize=100_000)
def _solvable(values: tuple[Fraction, ...]) -> bool:
    if len(values) == 1:
        return values[0] == TARGET
    n = len(values)
    for i in range(n):
        for j in range(i + 1, n):
            rest = [values[k] for k in range(n) if k not in (i, j)]
            for _, _, _, c in _pairs(values[i], values[j]):
                if _solvable(tuple(sorted([*rest, c]))):
                    return True
    return False


def solvable(values: list[Fraction] | tuple[Fraction, ...]) -> bool:
    """Whether 24 can still be reached from ``values``."""
    return _solvable(tuple(sorted(values)))


@dataclass(frozen=True, slots=True)
class Move:
    line: str
    items: tuple[Item, ...]

    @property
    def values(self) -> list[Fraction]:
        return [v for v, _ in self.items]


def start_items(numbers: tuple[int, ...] | list[int]) -> tuple[Item, ...]:
    return tuple(sorted((Fraction(n), str(n)) for n in numbers))


def _wrap(expr: str) -> str:
    return expr if re.fullmatch(r"\d+", expr) else f"({expr})"


def legal_moves(items: tuple[Item, ...]) -> list[Move]:
    """Every legal next move, in a fixed order."""
    moves: list[Move] = []
    n = len(items)
    for i in range(n):
        for j in range(i + 1, n):
            rest = [items[k] for k in range(n) if k not in (i, j)]
            (a, ea), (b, eb) = items[i], items[j]
            for x, op, y, c in _pairs(a, b):
                ex, ey = (ea, eb) if x == a else (eb, ea)
                new = tuple(sorted([*rest, (c, f"{_wrap(ex)} {op} {_wrap(ey)}")]))
                left = " ".join(fmt(v) for v, _ in new)
                line = f"{fmt(x)} {op} {fmt(y)} = {fmt(c)} (left: {left})"
                moves.append(Move(line, new))
    return moves


@lru_cache(maxsize=50_000)
def split_moves(items: tuple[Item, ...]) -> tuple[tuple[Move, ...], tuple[Move, ...]]:
    """The legal moves from ``items`` as (those keeping 24 reachable, the others); cached."""
    moves = legal_moves(items)
    good = tuple(m for m in moves if solvable(m.values))
    bad = tuple(m for m in moves if not solvable(m.values))
    return good, bad


def final_expression(items: tuple[Item, ...]) -> str:
    """The expression of the last item on the board."""
    return items[0][1] if items else ""


def solution_moves(numbers: tuple[int, ...]) -> list[Move] | None:
    """A solving sequence of moves, or ``None`` if the puzzle has no solution."""
    items = start_items(numbers)
    path: list[Move] = []
    while len(items) > 1:
        for move in legal_moves(items):
            if solvable(move.values):
                path.append(move)
                items = move.items
                break
        else:
            return None
    return path if items[0][0] == TARGET else None


def replay(text: str, numbers: tuple[int, ...]) -> tuple[tuple[Item, ...], int, bool]:
    """Apply the move lines found in ``text`` to the start board.

    Returns (board after the moves, number of legal moves applied, whether every move line was
    legal). Replay stops at the first illegal move.
    """
    items = start_items(numbers)
    count = 0
    for m in _MOVE.finditer(text):
        line = m.group(0).strip()
        match = next((mv for mv in legal_moves(items) if mv.line == line), None)
        if match is None:
            return items, count, False
        items = match.items
        count += 1
        if len(items) == 1:
            break
    return items, count, True


def _eval(node: ast.AST, leaves: list[Fraction]) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body, leaves)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        leaves.append(Fraction(node.value))
        return Fraction(node.value)
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, leaves), _eval(node.right, leaves)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return left / right
    raise ValueError("not an arithmetic expression")


def check_expression(expr: str, numbers: tuple[int, ...]) -> bool:
    """Whether ``expr`` uses exactly ``numbers`` once each and equals 24."""
    s = (
        expr.replace("\\times", "*")
        .replace("\\div", "/")
        .replace("\u00d7", "*")
        .replace("\u00f7", "/")
    )
    s = s.split("=")[0].strip().strip("$").strip()
    if not s or len(s) > 200:
        return False
    try:
        leaves: list[Fraction] = []
        value = _eval(ast.parse(s, mode="eval"), leaves)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return False
    return value == TARGET and sorted(leaves) == sorted(Fraction(n) for n in numbers)
