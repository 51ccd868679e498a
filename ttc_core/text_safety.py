"""Untrusted text made storable: what a model, a scorer or a server's error body says is
kept, visibly, in a form Postgres can hold.

Real models emit NUL, lone surrogates and broken UTF-8 (a random-weight model does all
three within minutes). Postgres refuses NUL in ``text`` and lone surrogates in ``json``,
and ``httpx`` cannot even encode a lone surrogate into the next request's body. So:

- :func:`decode_json_body` reads a response body whose bytes may not be UTF-8: invalid
  bytes become U+FFFD (counted as ``invalid_utf8``), instead of failing the request;
- :func:`clean_text` replaces NUL and lone surrogates with U+FFFD and says how many it
  replaced (``{"nul": 3, "surrogates": 1, "invalid_utf8": 2}``): the inference client
  applies it to every generated text and a node keeps the counts in ``meta.sanitized``;
- :class:`SafeText` and :class:`SafeJSON` are the column types of the text that enters the
  store (node text, answers, finish reasons, meta, job errors and results, event data):
  whatever path a string took (an exception message quoting a server's body, a verifier's
  feedback), it is cleaned on its way into the database.

U+FFFD is what a UTF-8 decoder shows for bytes it cannot read, so the replacement is
visible in the API, the CLI and the UI, and never mistaken for the model's own text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import JSON, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "REPLACEMENT",
    "SafeJSON",
    "SafeText",
    "clean_text",
    "decode_json_body",
    "merge_counts",
    "safe_json",
    "safe_text",
]

#: What an unstorable character becomes.
REPLACEMENT = "\ufffd"

# Python decodes each byte that is not UTF-8 to U+DC80..U+DCFF under ``surrogateescape``;
# other lone surrogates come from JSON escapes (``"\ud800"``) a server sent.
_UNSAFE = re.compile("[\x00\ud800-\udfff]")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def clean_text(text: str) -> tuple[str, dict[str, int]]:
    """``text`` with NUL and lone surrogates replaced by U+FFFD, and the counts replaced
    (keys ``nul``, ``surrogates``, ``invalid_utf8``; empty when nothing was)."""
    if text.isascii():
        if "\x00" not in text:
            return text, {}
        return text.replace("\x00", REPLACEMENT), {"nul": text.count("\x00")}
    if _UNSAFE.search(text) is None:
        return text, {}
    counts: dict[str, int] = {}
    nul = text.count("\x00")
    escaped = len(_ESCAPED_BYTE.findall(text))
    surrogates = len(_UNSAFE.findall(text)) - nul - escaped
    for key, value in (("nul", nul), ("surrogates", surrogates), ("invalid_utf8", escaped)):
        if value:
            counts[key] = value
    return _UNSAFE.sub(REPLACEMENT, text), counts


def safe_text(text: str) -> str:
    """:func:`clean_text` without the counts."""
    return clean_text(text)[0]


def safe_json(value: Any) -> Any:
    """A copy of a JSON-able value with every string in it (keys too) made safe; values
    that need no change are returned as they are."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, Mapping):
        return {safe_json(k) if isinstance(k, str) else k: safe_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(v) for v in value]
    return value


def merge_counts(*parts: Mapping[str, int] | None) -> dict[str, int]:
    """Sum replacement counts (``None`` and empty parts are skipped)."""
    out: dict[str, int] = {}
    for part in parts:
        for key, value in (part or {}).items():
            out[key] = out.get(key, 0) + int(value)
    return out


def decode_json_body(raw: bytes) -> Any:
    """The JSON value in a response body. Bytes that are not UTF-8 do not fail it: they
    decode to lone surrogates (``surrogateescape``), which :func:`clean_text` later turns
    into U+FFFD and counts as ``invalid_utf8``. Raises ``ValueError`` if it is not JSON."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        return json.loads(raw.decode("utf-8", "surrogateescape"))


class SafeText(TypeDecorator[str]):
    """``Text`` whose values are cleaned on the way into the database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return safe_text(value) if isinstance(value, str) else value


class SafeJSON(TypeDecorator[Any]):
    """``JSON`` whose strings are cleaned on the way into the database."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return safe_json(value)
