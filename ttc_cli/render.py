"""Terminal rendering: a progress line and a compact view of a tree."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TreeRow:
    depth: int
    child_index: int
    status: str
    answer: str | None
    score: float | None
    correct: bool | None
    completion_tokens: int
    chosen: bool


def progress_line(status: str, done: int, total: int | None, tokens: int, width: int = 30) -> str:
    if total:
        filled = min(width, width * done // max(1, total))
        bar = "#" * filled + "-" * (width - filled)
        return f"\r[{bar}] {done}/{total} nodes  {tokens} tokens  {status:<10}"
    return f"\r{done} nodes  {tokens} tokens  {status:<10}"


def write_progress(line: str) -> None:
    sys.stderr.write(line)
    sys.stderr.flush()


def _mark(correct: bool | None) -> str:
    return {True: "right", False: "wrong", None: ""}[correct]


def compact_tree(rows: Sequence[TreeRow], *, max_rows: int = 24) -> str:
    """One line per node (depth-indented), the chosen node starred, long trees cut."""
    lines = ["root (prompt)"]
    shown = list(rows[:max_rows])
    for row in shown:
        indent = "  " * row.depth
        star = "*" if row.chosen else " "
        score = "   -  " if row.score is None else f"{row.score:6.3f}"
        answer = (row.answer or "-")[:16]
        status = "" if row.status == "done" else f" [{row.status}]"
        lines.append(
            f"{indent}{star}#{row.child_index:<3} answer={answer:<16} score={score} "
            f"tokens={row.completion_tokens:<5} {_mark(row.correct)}{status}"
        )
    if len(rows) > len(shown):
        lines.append(f"  ... {len(rows) - len(shown)} more nodes")
    return "\n".join(lines)
