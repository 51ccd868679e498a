"""What can be stored and sent back: a check for incoming JSON, a scrub for outgoing.

Python's ``json`` reads things that neither Postgres nor a JSON encoder can take: a lone
surrogate (``"\\ud800"``) is a valid escape that no UTF-8 text can hold; ``Infinity``,
``NaN`` and ``1e999`` (which overflows to infinity) are numbers no JSON document may
carry; an integer past 64 bits fits no ``BIGINT``; and Postgres text cannot hold NUL.
Any of them taken in fails later, in an insert or in every response that would show it.

:func:`parse_storable` is the one check, applied to every JSON body before a route sees
it (``ttc_api.json_check``), so that no field needs its own patch. :func:`scrub` is the
other side: text that got in anyway (rows older than this check, a model's output) is
shown with U+FFFD in place of what cannot be encoded, so a list never fails on one row.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

#: Integers a ``BIGINT`` column holds.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Integers an ``INTEGER`` column holds (event ids, depths, child indexes).
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Unstorable:
    """Where a value that cannot be stored sits (``a.b.0.c``), and why not."""

    field: str
    reason: str


class _NonFinite:
    """Stands in for a non-finite number while parsing (its place is found after)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def parse_storable(raw: bytes | str) -> tuple[Any, Unstorable | None]:
    """Parse a JSON document; returns the value and the first unstorable part, if any.

    Raises ``ValueError`` for a document that is not JSON (the caller leaves that to the
    framework's own 422)."""
    value = json.loads(raw, parse_constant=_NonFinite, parse_float=_parse_float)
    return value, find_unstorable(value)


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    if "\x00" in text:
        return "text must not contain a NUL character (\\u0000)"
    if _SURROGATE.search(text):
        return "text must be valid Unicode (a lone surrogate such as \\ud800 is not)"
    return None


def find_unstorable(value: Any, field: str = "") -> Unstorable | None:
    """The first string, number or key in ``value`` that cannot be stored."""
    if isinstance(value, str):
        reason = text_problem(value)
        return Unstorable(field, reason) if reason else None
    if isinstance(value, _NonFinite):
        return Unstorable(field, f"{value.text} is not a finite number")
    if isinstance(value, float):
        return None if math.isfinite(value) else Unstorable(field, "not a finite number")
    if isinstance(value, int) and not isinstance(value, bool):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return Unstorable(field, "integer out of range (at most 64 bits)")
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{field}.{key}" if field else str(key)
            reason = text_problem(key) if isinstance(key, str) else None
            if reason:
                return Unstorable(field or _printable(key), f"a key: {reason}")
            found = find_unstorable(item, where)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = find_unstorable(item, f"{field}.{i}" if field else str(i))
            if found:
                return found
    return None


def _printable(text: str) -> str:
    return scrub_text(text).replace("\x00", "")


def scrub_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (encodable as UTF-8)."""
    if not _SURROGATE.search(text):
        return text
    # Through UTF-16, where a pair of surrogates is a character and a lone one is an
    # error that "replace" turns into U+FFFD.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def scrub(value: Any) -> Any:
    """``value`` with unencodable text and non-finite numbers made safe to send as JSON
    (U+FFFD; ``null``). Returns ``value`` itself when nothing needed a change."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        out = {scrub_text(k) if isinstance(k, str) else k: scrub(v) for k, v in value.items()}
        same = all(a is b for a, b in zip(value.values(), out.values(), strict=True))
        return value if same and list(out) == list(value) else out
    if isinstance(value, list):
        items = [scrub(v) for v in value]
        return value if all(a is b for a, b in zip(value, items, strict=True)) else items
    return value
