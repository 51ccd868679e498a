"""Reading a server's ``usage`` numbers without trusting them.

Models and servers are untrusted: a misbehaving server reports negative, fractional,
missing, boolean or absurdly large token counts. None of that may fail a request (it was
paid for) or reach the budgets as garbage. :func:`read_count` accepts an honest count as it
is and otherwise says what was wrong; the client then falls back to an estimate from the
text (about four characters a token) and notes it on the nodes (``meta.usage``), so the
job's usage and budgets still move and the operator can see which numbers were guessed.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["HARD_LIMIT", "estimate_tokens", "merge_notes", "read_count"]

#: No single response's count is believed beyond this (a node's token columns are int4).
HARD_LIMIT = 100_000_000


def estimate_tokens(text: str) -> int:
    """A rough token count of ``text`` (about four characters a token, at least one)."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def read_count(value: Any, limit: int) -> tuple[int | None, str | None]:
    """An honest token count as an int, or ``(None, why)`` when it cannot be believed.

    Integral floats (``12.0``) and numeric strings (``"12"``) are accepted as numbers but
    flagged; anything above ``limit`` is too large to be true."""
    if value is None:
        return None, "missing"
    if isinstance(value, bool):
        return None, f"not a number ({value!r})"
    note: str | None = None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None, f"not a number ({value[:40]!r})"
        note = "sent as a string"
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return None, f"not an integer ({value!r})"
        value = int(value)
        note = note or "sent as a float"
    if not isinstance(value, int):
        return None, f"not a number ({type(value).__name__})"
    if value < 0:
        return None, f"negative ({value})"
    if value > min(limit, HARD_LIMIT):
        return None, f"too large ({value} > {min(limit, HARD_LIMIT)})"
    return value, note


def merge_notes(*parts: dict[str, Any] | None) -> dict[str, Any] | None:
    """One node's notes from the notes of the choices its text was made of (a thought's
    rounds): replacement counts are summed, usage fixes kept (the latest per field)."""
    sanitized: dict[str, int] = {}
    usage: dict[str, str] = {}
    for part in parts:
        for key, value in ((part or {}).get("sanitized") or {}).items():
            sanitized[key] = sanitized.get(key, 0) + int(value)
        usage.update((part or {}).get("usage") or {})
    out: dict[str, Any] = {}
    if sanitized:
        out["sanitized"] = sanitized
    if usage:
        out["usage"] = usage
    return out or None
