"""Regex match: the answer is the first capture group of the pattern's last match."""

from __future__ import annotations

from ttc_core.verifiers.exact import ExactVerifier
from ttc_core.verifiers.patterns import MAX_PATTERN_CHARS, AnswerPattern, TenantPattern

__all__ = ["MAX_PATTERN_CHARS", "RegexVerifier", "compile_answer_pattern"]


def compile_answer_pattern(pattern: str | AnswerPattern, *, need_group: bool) -> AnswerPattern:
    """Compile a user's answer pattern with RE2 (see :mod:`ttc_core.verifiers.patterns`);
    ``ValueError`` says what is wrong with it. An already compiled pattern is kept."""
    compiled = TenantPattern(pattern) if isinstance(pattern, str) else pattern
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

    def __init__(self, pattern: str | AnswerPattern, reference: str | None = None) -> None:
        super().__init__(reference, compile_answer_pattern(pattern, need_group=True))
