"""Tenant-written patterns, compiled by RE2: matching takes time linear in the text.

A Python ``re`` pattern such as ``(a+)+$`` backtracks exponentially: against forty ``a``
and a ``!`` it holds a worker's CPU for minutes, and a timeout cannot interrupt ``re`` (it
runs in C holding the GIL). RE2 (``google-re2``) never backtracks, so no pattern can take
more than time proportional to the text times the pattern's size, and the per-pattern
memory is bounded (``max_mem``); a pattern RE2 cannot compile (backreferences,
lookarounds, possessive quantifiers) is refused at submission with the reason, naming the
field. RE2's syntax is Python's for everything else (``(?P<name>...)``, ``(?i)``, classes),
with ``\\d``, ``\\w`` and ``\\b`` ASCII-only.

Every pattern that comes from a job (``verifier.pattern``, answer extraction, the
step-final check) is a :class:`TenantPattern`; the engine's own fixed patterns stay ``re``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import re2

__all__ = ["MAX_PATTERN_CHARS", "AnswerPattern", "PatternMatch", "TenantPattern"]

MAX_PATTERN_CHARS = 500
#: RE2's memory budget for one compiled pattern (its default is 8 MiB).
MAX_PATTERN_MEMORY = 8 * 1024 * 1024


class PatternMatch(Protocol):
    def group(self, index: int = 0, /) -> Any: ...

    def end(self, index: int = 0, /) -> int: ...


class AnswerPattern(Protocol):
    """What answer extraction needs of a compiled pattern (``re.Pattern`` has it too)."""

    @property
    def pattern(self) -> str: ...

    @property
    def groups(self) -> int: ...

    def finditer(self, text: str) -> Iterator[Any]: ...

    def search(self, text: str) -> Any: ...


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # refused patterns are reported to the tenant, not logged
    options.max_mem = MAX_PATTERN_MEMORY
    return options


class TenantPattern:
    """A tenant's pattern compiled by RE2; ``ValueError`` when RE2 cannot compile it."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise ValueError(f"pattern is longer than {MAX_PATTERN_CHARS} characters")
        try:
            self._compiled = re2.compile(pattern, _options())
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise ValueError(
                f"pattern does not compile as RE2 (linear-time matching: no backreferences "
                f"or lookarounds): {reason}"
            ) from None
        except (TypeError, UnicodeError) as exc:
            raise ValueError(f"pattern does not compile: {exc}") from None
        self.pattern = pattern
        self.groups: int = self._compiled.groups

    def finditer(self, text: str) -> Iterator[Any]:
        return iter(self._compiled.finditer(text))

    def search(self, text: str) -> Any:
        return self._compiled.search(text)

    def __repr__(self) -> str:
        return f"TenantPattern({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TenantPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)
