"""Final-answer extraction and normalization.

Pure, fast string functions shared by the verifiers and by answer voting (self-consistency,
weighted best-of-N): two samples vote for the same answer exactly when their normalized
answers are equal strings.

>>> extract_answer("The final answer is $\\\\boxed{72}$.\\nANSWER: 72")
'72'
>>> normalize_answer("$1,000.50$.")
'1000.5'
"""

from __future__ import annotations

import functools
import re

from ttc_core.verifiers.patterns import AnswerPattern

__all__ = ["extract_answer", "last_boxed", "normalize_answer", "strip_wrappers"]

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")
# "ANSWER: 72", "Answer: 72", "**Answer:** 72", "The answer is 72", "The final answer is: 72".
# The value is the rest of the line (or the next line when the marker ends its line).
_ANSWER_MARKER = re.compile(r"(?i)\b(?:final\s+)?answer\s*(?:is\b|:)")
_MARKER_VALUE = re.compile(r"[ \t*:]*\n?[ \t*]*([^\n]*)")
# A number not glued to a word on its left: "-3", "1,000", "2.5", "3/4", ".5".
_NUMBER = re.compile(
    r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:/\d+)?|(?<![\w.])-?\.\d+"
)

_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"), ("`", "`"))
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_WS = re.compile(r"\s+")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_DECIMAL = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?$")
_CHOICE = re.compile(r"^\(([A-Za-z])\)(?:\s.*)?$|^([A-Za-z])[.)]$", re.DOTALL)
_WORDS = re.compile(r"^[A-Za-z][A-Za-z '\-]*$")


def _balanced_end(text: str, start: int) -> int | None:
    """Index of the ``}`` closing the brace opened just before ``start``, if any."""
    depth = 1
    for brace in _BRACE.finditer(text, start):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return brace.start()
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) whose braces balance.

    An unterminated box (a truncated output) is skipped in favour of an earlier complete one.
    Linear in the number of braces.
    """
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    end = _balanced_end(text, starts[-1])
    if end is not None:
        return text[starts[-1] : end]
    # The last box is unterminated: match every brace once, then take the last closed box.
    closing: dict[int, int] = {}
    stack: list[int] = []
    for brace in _BRACE.finditer(text):
        if brace.group() == "{":
            stack.append(brace.end())
        elif stack:
            closing[stack.pop()] = brace.start()
    for start in reversed(starts[:-1]):
        close = closing.get(start)
        if close is not None:
            return text[start:close]
    return None


def _clean_marker_value(value: str) -> str:
    return value.strip().strip("*").strip()


def extract_answer(text: str, pattern: AnswerPattern | None = None) -> str | None:
    """The raw final answer stated in ``text``, or ``None`` when there is none.

    With ``pattern``: the first capture group of the *last* match (the whole match when the
    pattern has no group). Without: the last balanced ``\\boxed{...}``, else the value of the
    last ``ANSWER:`` / ``Answer:`` / ``The answer is`` marker, else the last number.
    The result is stripped but not normalized (see :func:`normalize_answer`).
    """
    if pattern is not None:
        last = None
        for last in pattern.finditer(text):  # noqa: B007 - we want the final match
            pass
        if last is None:
            return None
        value = last.group(1) if pattern.groups >= 1 else last.group(0)
        if value is None or not value.strip():
            return None
        return value.strip()

    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()

    for marker in reversed(list(_ANSWER_MARKER.finditer(text))):
        found = _MARKER_VALUE.match(text, marker.end())
        value = _clean_marker_value(found.group(1)) if found is not None else ""
        if value:
            return value

    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def strip_wrappers(s: str) -> str:
    """Remove surrounding whitespace, math delimiters, markdown and trailing periods."""
    while True:
        before = s
        s = s.strip()
        if s.endswith(".") and not s.endswith(".."):
            s = s[:-1].rstrip()
        for left, right in _WRAPPERS:
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                inner = s[len(left) : len(s) - len(right)]
                if left not in inner:  # "$x$ and $y$" is not one wrapped answer
                    s = inner
                    break
        boxed = _BOXED.match(s)
        if boxed is not None and _balanced_end(s, boxed.end()) == len(s) - 1:
            s = s[boxed.end() : -1]
        if s == before:
            return s


def _canonical_decimal(s: str) -> str | None:
    """``"5.0"`` -> ``"5"``, ``"0.50"`` -> ``"0.5"``, ``"-0"`` -> ``"0"``, ``"007"`` -> ``"7"``;
    ``None`` when ``s`` is not a plain decimal number. Exact (pure string work)."""
    m = _DECIMAL.match(s)
    if m is None:
        return None
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    if not whole and not frac:
        return None
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    out = whole + ("." + frac if frac else "")
    if out == "0" or sign != "-":
        return out
    return "-" + out


@functools.lru_cache(maxsize=8192)
def normalize_answer(ans: str) -> str:
    """Canonical string form of an answer, for equality checks and voting.

    Strips whitespace, surrounding ``$``/``\\(\\)``/markdown, a trailing period, a whole
    ``\\boxed{}`` and ``\\text{}``-style wrappers; drops thousands separators
    (``"1,000"`` -> ``"1000"``); writes plain numbers canonically (``"5.0"`` -> ``"5"``,
    ``"0.50"`` -> ``"0.5"``, ``"-0"`` -> ``"0"``); reduces multiple-choice letters to lower case
    (``"(B)"`` -> ``"b"``); lowercases plain words. Other text (LaTeX, expressions) is kept
    as is apart from collapsing runs of whitespace.
    """
    s = strip_wrappers(ans)
    for _ in range(4):
        unwrapped = _TEXT_WRAP.sub(r"\1", s)
        if unwrapped == s:
            break
        s = strip_wrappers(unwrapped)
    s = s.replace("{,}", ",").replace("\\!", "").replace("\\%", "%").replace("\\$", "$")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _WS.sub(" ", strip_wrappers(s))

    if s.startswith("$") and _canonical_decimal(s[1:].replace(",", "")) is not None:
        s = s[1:]  # a dollar amount: "$5" -> "5"
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    number = _canonical_decimal(s)
    if number is not None:
        return number

    choice = _CHOICE.match(s)
    if choice is not None:
        return (choice.group(1) or choice.group(2)).lower()
    if _WORDS.match(s):
        return s.lower()
    return s
