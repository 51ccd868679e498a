"""The state a step-level path reaches, so that a search can merge paths that reach the same
one.

Tree-of-thoughts keeps the best ``b`` states per depth; when two proposals lead to one state
(the same move proposed twice from a state, or two orders of moves that leave the same numbers)
keeping both spends the beam on a single state. The ToT reference implementation values a
duplicate at 0 so that it is never kept. The executor stores each step node's key in
``meta.state`` (``NodeView.state``) and ``tot_bfs`` keeps one node per key.

A path's key is the multiset of numbers left when its last step is a Game of 24 move in the
Tree-of-Thoughts format (``13 - 9 = 4 (left: 4 4 10)``): what can still be reached depends only
on those. Any other path's key is a digest of its steps with whitespace collapsed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from fractions import Fraction

_LEFT = re.compile(r"\(left:\s*([^)]*)\)")


def _numbers(text: str) -> list[Fraction] | None:
    try:
        return [Fraction(tok.rstrip(",;")) for tok in text.replace(",", " ").split()]
    except (ValueError, ZeroDivisionError):
        return None


def _fmt(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value}"


def state_key(steps: Sequence[str]) -> str:
    """``left:<numbers ascending>`` for a path ending in a Game of 24 move, else
    ``path:<digest>`` of the whitespace-normalised steps."""
    if steps:
        found = _LEFT.findall(steps[-1])
        numbers = _numbers(found[-1]) if found else None
        if numbers:
            return "left:" + " ".join(_fmt(v) for v in sorted(numbers))
    h = hashlib.blake2b(digest_size=12)
    for step in steps:
        h.update(" ".join(step.split()).encode())
        h.update(b"\x1e")
    return "path:" + h.hexdigest()
