"""A deterministic toy tokenizer.

A token is a run of letters, a run of digits, or one other character, each with the whitespace
before it attached; whitespace at the very end of the text is a token of its own. Joining the
tokens rebuilds the text exactly, so the tokens serve for usage counts, ``max_tokens``
truncation and streaming deltas alike.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\s*(?:[^\W\d_]+|\d+|[^\w\s]|_)|\s+")


def split_tokens(text: str) -> list[str]:
    """The tokens of ``text``; ``"".join(split_tokens(t)) == t``."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens ``text`` has."""
    return len(_TOKEN.findall(text))


def truncate_tokens(text: str, max_tokens: int) -> tuple[str, bool]:
    """The first ``max_tokens`` tokens of ``text`` and whether anything was cut."""
    tokens = split_tokens(text)
    if len(tokens) <= max_tokens:
        return text, False
    return "".join(tokens[:max_tokens]), True
