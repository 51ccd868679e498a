"""Regex match: the answer is the first capture group of the pattern's last match."""

from __future__ import annotations

import re

from ttc_core.verifiers.exact import ExactVerifier

__all__ = ["RegexVerifier", "compile_answer_pattern"]

MAX_PATTERN_CHARS = 500


def compile_answer_pattern(pattern: str | re.Pattern[str], *, need_group: bool) -> re.Pattern[str]:
    """Compile a user's answer pattern; ``ValueError`` says what is wrong with it."""
    if isinstance(pattern, re.Pattern):
        compiled = pattern
    else:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise ValueError(f"pattern is longer than {MAX_PATTERN_CHARS} characters")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern does not compile: {exc}") from None
    if need_group and compiled.groups < 1:
        raise ValueError(
            "pattern needs a capture group around the answer, e.g. 'ANSWER:\\s*(\\S+)'"
        )
    return compiled


class RegexVerifier(ExactVerifier):
    """Like :class:`ExactVerifier`, with the answer taken from a user pattern's first group
    (of the last match). Without a match the output has no answer (score 0.0 with a
    reference)."""

    kind: str = "regex"
    needs_reference: bool = True

    def __init__(self, pattern: str | re.Pattern[str], reference: str | None = None) -> None:
        super().__init__(reference, compile_answer_pattern(pattern, need_group=True))
