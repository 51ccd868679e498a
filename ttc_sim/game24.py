"""Game of 24: exact arithmetic on fractions, a memoised solver, legal moves in the
Tree-of-Thoughts format (``13 - 9 = 4 (left: 4 4 10)``), an expression checker, and the
simulated model's per-puzzle move skill (:func:`move_skills`)."""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

from .rng import rng_for

if TYPE_CHECKING:
    from .config import SimConfig

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
    """Every legal next move, in a fixed order; of moves that read the same (equal numbers
    built differently), only the first, so that a move line means one board."""
    moves: list[Move] = []
    seen: set[str] = set()
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
                if line not in seen:
                    seen.add(line)
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


@lru_cache(maxsize=50_000)
def _moves_by_line(items: tuple[Item, ...]) -> dict[str, Move]:
    return {m.line: m for m in legal_moves(items)}


def move_lines(text: str) -> list[str]:
    """The move lines (``a op b = c (left: ...)``) found in ``text``."""
    return [m.group(0).strip() for m in _MOVE.finditer(text)]


def _number(text: str) -> Fraction | None:
    try:
        return Fraction(text.strip().rstrip(",.;"))
    except (ValueError, ZeroDivisionError):
        return None


def apply_move(items: tuple[Item, ...], line: str) -> tuple[Item, ...] | None:
    """The board after the move ``line``, or ``None`` if the move is not legal arithmetic on
    ``items`` (an operand not on the board, a wrong result, or a wrong ``left:`` list).

    A line in this module's own format is looked up; any other spelling is checked by value.
    """
    move = _moves_by_line(items).get(line)
    if move is not None:
        return move.items
    m = _MOVE.fullmatch(line.strip())
    if m is None:
        return None
    x, op, y, z = _number(m.group(1)), m.group(2), _number(m.group(3)), _number(m.group(4))
    left = [_number(v) for v in m.group(5).split()]
    if x is None or y is None or z is None or any(v is None for v in left):
        return None
    if op == "/" and y == 0:
        return None
    result = {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else x}[op]
    if result != z:
        return None
    rest = list(items)
    picked: list[Item] = []
    for value in (x, y):
        pos = next((i for i, (v, _) in enumerate(rest) if v == value), None)
        if pos is None:
            return None
        picked.append(rest.pop(pos))
    (_, ex), (_, ey) = picked
    new = tuple(sorted([*rest, (z, f"{_wrap(ex)} {op} {_wrap(ey)}")]))
    if sorted(v for v, _ in new) != sorted(v for v in left if v is not None):
        return None
    return new


def replay(text: str, numbers: tuple[int, ...]) -> tuple[tuple[Item, ...], int, bool]:
    """Apply the move lines found in ``text`` to the start board.

    Returns (board after the moves, number of legal moves applied, whether every move line was
    legal). Replay stops at the first illegal move.
    """
    items = start_items(numbers)
    count = 0
    for line in move_lines(text):
        new = apply_move(items, line)
        if new is None:
            return items, count, False
        items = new
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


# ------------------------------------------------------------------ simulated skill


@lru_cache(maxsize=20_000)
def puzzle_difficulty(pid: str) -> float:
    """A puzzle's latent difficulty d ~ N(0, 1), drawn once from its id: the same puzzle is
    hard for every sample and every prompt, so failures on it are correlated."""
    return rng_for("game24-difficulty", pid).gauss(0.0, 1.0)


def skill_on(skill: float, shift: float) -> float:
    """``sigmoid(logit(skill) - shift)`` (a Rasch model: ability minus difficulty, in
    logits); 0 and 1 stay what they are."""
    if shift == 0.0 or skill <= 0.0 or skill >= 1.0:
        return skill
    x = math.log(skill / (1.0 - skill)) - shift
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def move_skills(cfg: SimConfig, pid: str) -> tuple[float, float]:
    """(skill of a generation's first move, skill of its later moves) on puzzle ``pid``.

    The first move is made on a board the prompt shows (the puzzle, or the ``left:`` list of
    the path being continued), the later ones on a board the model wrote itself; see
    :class:`ttc_sim.config.SimConfig`. Both fall back to ``game24_skill``.
    """
    propose = cfg.game24_skill if cfg.game24_propose_skill is None else cfg.game24_propose_skill
    later = cfg.game24_skill if cfg.game24_sample_skill is None else cfg.game24_sample_skill
    if cfg.game24_difficulty_sd == 0.0:
        return propose, later
    shift = cfg.game24_difficulty_sd * puzzle_difficulty(pid)
    return skill_on(propose, shift), skill_on(later, shift)
