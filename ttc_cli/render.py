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
    #: An ancestor of the chosen node (its path from the root is always shown).
    on_path: bool = False


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


def _shown_rows(rows: Sequence[TreeRow], max_rows: int) -> list[int]:
    """Indices to print: the chosen node's path always, then the earliest rows."""
    must = [i for i, row in enumerate(rows) if row.chosen or row.on_path]
    room = max(0, max_rows - len(must))
    keep = set(must) | set(range(min(room, len(rows))))
    return sorted(keep)


def compact_tree(rows: Sequence[TreeRow], *, max_rows: int = 24) -> str:
    """One line per node (depth-indented), the chosen node starred and its path marked
    with ``>``; long trees are cut, but never the chosen node's path."""
    lines = ["root (prompt)"]
    previous = -1
    for i in _shown_rows(rows, max_rows):
        if i > previous + 1:
            lines.append(f"  ... {i - previous - 1} more nodes")
        previous = i
        row = rows[i]
        indent = "  " * row.depth
        star = "*" if row.chosen else ">" if row.on_path else " "
        score = "   -  " if row.score is None else f"{row.score:6.3f}"
        answer = (row.answer or "-")[:16]
        status = "" if row.status == "done" else f" [{row.status}]"
        lines.append(
            f"{indent}{star}#{row.child_index:<3} answer={answer:<16} score={score} "
            f"tokens={row.completion_tokens:<5} {_mark(row.correct)}{status}"
        )
    if previous < len(rows) - 1:
        lines.append(f"  ... {len(rows) - previous - 1} more nodes")
    return "\n".join(lines)
