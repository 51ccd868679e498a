"""Math equivalence through the ``math-verify`` package (``\\frac{3}{4}`` = ``0.75`` = ``3/4``).

The answer is extracted as everywhere else (:func:`~ttc_core.verifiers.answers.extract_answer`);
equal normalized strings are equivalent without any parsing; otherwise both sides are parsed
to SymPy by ``math_verify.parse`` and compared by ``math_verify.verify``.

Timeouts: math-verify's own timeouts use ``signal.alarm``, which only works in the main
thread; verifiers run in worker threads and event loops, so they are disabled here
(``parsing_timeout=None``, ``timeout_seconds=None``). In their place, inputs that could make
SymPy run for a very long time are refused before and after parsing (long strings, towers of
powers, huge integers, factorials, binomials or products of huge numbers) and such answers
are compared as normalized strings only. The SymPy work runs in ``asyncio.to_thread`` so the
event loop stays responsive; results are cached per (reference, answer) across verifiers.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from ttc_core.verifiers.answers import extract_answer, normalize_answer, strip_wrappers
from ttc_core.verifiers.base import Candidate, Verdict
from ttc_core.verifiers.exact import compare_verdict, no_answer_verdict, normalize_reference

__all__ = ["MathVerifier", "math_equivalent", "warm_up"]

logger = logging.getLogger(__name__)

#: Longer answers are compared as strings only (parsing cost grows with length).
MAX_MATH_CHARS = 300
#: Largest numeric exponent or factorial-like argument handed to SymPy.
MAX_MAGNITUDE = 10_000
#: Largest integer literal (in bits, ~4000 decimal digits) handed to SymPy.
MAX_INT_BITS = 13_000
_MAX_NODES = 2_000
_MAX_DEPTH = 80

# A caret inside a braced exponent, one or two levels deep: 9^{9^{9}}, 2^{(3^{4})}.
_NESTED_POWER = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\{[^{}]*\{[^{}]*\^|\^\s*\(?\s*\d+\s*\)?\s*\^")
# Functions that SymPy evaluates eagerly while parsing (binomials, gcd) or that grow fast.
_EAGER = re.compile(r"\\(?:d|t)?binom|\\choose|\\gcd|\\lcm|\\prod|\\operatorname|!|mod")
_BIG_LITERAL = re.compile(r"\d{7,}")
_NUMERIC_POWER = re.compile(r"\^\s*\{?\s*\(?\s*\d")


class _DropTimeoutDisabledWarning(logging.Filter):
    """math-verify logs a warning when its timeouts are off; here that is deliberate."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


@lru_cache(maxsize=1)
def _math_verify() -> tuple[Callable[..., list[Any]], Callable[..., bool]]:
    """Import math-verify (and SymPy) on first use: it takes about half a second."""
    from math_verify import parse, verify

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_DropTimeoutDisabledWarning())
    return parse, verify


def _latex_body(raw: str) -> str:
    """The answer without ``$``/``\\(...\\)``/``\\boxed{}`` wrappers and trailing period."""
    return strip_wrappers(raw)


def _string_is_risky(body: str) -> bool:
    if len(body) > MAX_MATH_CHARS or _NESTED_POWER.search(body):
        return True
    if not _EAGER.search(body):
        return False
    return bool(_NUMERIC_POWER.search(body) or _BIG_LITERAL.search(body))


def _is_tame(expr: Any) -> bool:
    """Whether comparing ``expr`` is cheap enough for SymPy (no huge evaluations)."""
    from sympy import (
        Basic,
        FallingFactorial,
        Integer,
        MatrixBase,
        Number,
        Pow,
        Product,
        Rational,
        RisingFactorial,
        binomial,
        factorial,
        factorial2,
        gamma,
        subfactorial,
    )

    growth = (
        factorial,
        factorial2,
        subfactorial,
        binomial,
        gamma,
        RisingFactorial,
        FallingFactorial,
        Product,
    )
    budget = [_MAX_NODES]

    def magnitude_ok(value: Any) -> bool:
        if not isinstance(value, Basic) or value.free_symbols:
            return True  # symbolic: nothing is evaluated
        number = value if isinstance(value, Number) else value.evalf(15)
        if not isinstance(number, Number):
            return True  # complex or unevaluable: SymPy keeps it symbolic
        return bool(abs(number) <= MAX_MAGNITUDE)

    def walk(node: Any, depth: int) -> bool:
        budget[0] -= 1
        if budget[0] < 0 or depth > _MAX_DEPTH:
            return False
        if isinstance(node, MatrixBase) and not isinstance(node, Basic):
            return all(walk(item, depth + 1) for item in node)
        if not isinstance(node, Basic):
            return True
        if isinstance(node, Integer) and node.p.bit_length() > MAX_INT_BITS:
            return False
        if isinstance(node, Rational) and max(node.p.bit_length(), node.q.bit_length()) > (
            MAX_INT_BITS
        ):
            return False
        if not all(walk(arg, depth + 1) for arg in node.args):
            return False
        if isinstance(node, Pow):
            base, exponent = node.args
            if base in (0, 1, -1):
                return True
            return magnitude_ok(exponent)
        if isinstance(node, growth):
            return all(magnitude_ok(n) for n in node.atoms(Number))
        return True

    try:
        return walk(expr, 0)
    except Exception:  # a check that fails is a refusal, never an error
        return False


@lru_cache(maxsize=4096)
def _parse(body: str) -> tuple[Any, ...]:
    """math-verify's parse of ``body`` (LaTeX or plain), reduced to the tame parts.

    An empty tuple when nothing parses or the answer is too risky to hand to SymPy.
    """
    if not body or _string_is_risky(body):
        return ()
    parse, _ = _math_verify()
    try:
        parsed = parse(f"${body}$", parsing_timeout=None)
        if not parsed:
            parsed = parse(body, parsing_timeout=None)
    except Exception:  # math-verify swallows most errors itself; be sure
        logger.debug("math parse failed for %r", body, exc_info=True)
        return ()
    return tuple(p for p in parsed if isinstance(p, str) or _is_tame(p))


@lru_cache(maxsize=16_384)
def math_equivalent(reference: str, answer: str) -> bool:
    """Whether two answers (LaTeX or plain, wrappers allowed) are mathematically equal.

    Pure CPU work, possibly tens of milliseconds: call it off the event loop. Answers whose
    normalized strings are equal are equal; otherwise math-verify decides (``False`` when
    either side cannot be parsed).
    """
    if normalize_answer(reference) == normalize_answer(answer):
        return True
    gold = _parse(_latex_body(reference))
    target = _parse(_latex_body(answer))
    if not gold or not target:
        return False
    _, verify = _math_verify()
    try:
        return bool(verify(list(gold), list(target), timeout_seconds=None))
    except Exception:
        logger.debug("math verify failed for %r vs %r", reference, answer, exc_info=True)
        return False


def warm_up() -> None:
    """Import math-verify and build its LaTeX parser now (about a second, once per process),
    e.g. at worker start, instead of inside the first verification."""
    math_equivalent("\\frac{1}{2}", "0.5")


class MathVerifier:
    """Mathematical equivalence of the extracted answer with the reference.

    Score 1.0 / 0.0 with a reference (``feedback`` says what was expected); without one the
    answer is still extracted and normalized (for voting) and the score is ``None``.
    """

    kind: str = "math"
    needs_reference: bool = True

    def __init__(self, reference: str | None, pattern: re.Pattern[str] | None = None) -> None:
        self.pattern = pattern
        self.reference = reference
        self.reference_norm = normalize_reference(reference)
        # Parse the reference once, here (cached across verifiers of the same job).
        self._reference_body = _latex_body(reference) if reference is not None else ""
        if self._reference_body:
            _parse(self._reference_body)

    def _answer(self, text: str) -> tuple[str | None, str]:
        raw = extract_answer(text, self.pattern)
        if raw is None:
            return None, ""
        return raw, normalize_answer(raw)

    def _equivalent_many(self, raws: list[str]) -> list[bool]:
        return [math_equivalent(self._reference_body, raw) for raw in raws]

    async def verify(self, candidates: Sequence[Candidate]) -> list[Verdict]:
        answers = [self._answer(c.text) for c in candidates]
        ref = self.reference_norm
        if ref is None:
            return [
                compare_verdict(norm, None, None) if norm else no_answer_verdict(None, self.pattern)
                for _, norm in answers
            ]
        # Only answers that differ from the reference as strings need SymPy.
        pending = sorted({raw for raw, norm in answers if raw is not None and norm and norm != ref})
        results: dict[str, bool] = {}
        if pending:
            flags = await asyncio.to_thread(self._equivalent_many, pending)
            results = dict(zip(pending, flags, strict=True))
        verdicts: list[Verdict] = []
        for raw, norm in answers:
            if raw is None or not norm:
                verdicts.append(no_answer_verdict(ref, self.pattern))
            else:
                verdicts.append(compare_verdict(norm, ref, norm == ref or results[raw]))
        return verdicts
