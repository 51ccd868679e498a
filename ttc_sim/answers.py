"""Final-answer extraction and comparison (numbers compare numerically, letters and text
compare case-insensitively)."""

from __future__ import annotations

import re
from fractions import Fraction

_ANSWER_LINE = re.compile(r"(?i)\banswer\s*:[ \t]*([^\n]*)")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_FRAC = re.compile(r"\\d?frac\{(-?\d+)\}\{(\d+)\}")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.)]?$")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``text`` (braces balanced), if any."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def extract_answer(text: str) -> str | None:
    """The last ``ANSWER:`` line's content, else the last ``\\boxed{}``'s, else ``None``."""
    matches = _ANSWER_LINE.findall(text)
    for found in reversed(matches):
        if found.strip():
            return found.strip()
    boxed = last_boxed(text)
    return boxed.strip() if boxed is not None else None


def normalize_answer(answer: str) -> str:
    """Strip TeX wrappers, dollars and trailing punctuation."""
    s = answer.strip()
    for _ in range(3):
        s = _TEXT_WRAP.sub(r"\1", s)
    s = _FRAC.sub(r"\1/\2", s)
    s = s.replace("\\!", "").replace("\\,", "").replace("\\$", "").replace("$", "")
    return s.strip().rstrip(".").strip()


def parse_number(answer: str) -> Fraction | None:
    """The single number in ``answer`` (``"$70,000"`` -> 70000), or ``None``."""
    s = normalize_answer(answer)
    found = _NUMBER.findall(s)
    if len(found) != 1:
        return None
    try:
        return Fraction(found[0].replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def letter_of(answer: str) -> str | None:
    """``"B"``, ``"(B)"``, ``"B)"``, ``"B."`` -> ``"B"``."""
    m = _LETTER.match(normalize_answer(answer))
    return m.group(1).upper() if m else None


def answers_match(given: str, truth: str) -> bool:
    """Whether ``given`` states the same answer as ``truth``."""
    truth_num = parse_number(truth)
    if truth_num is not None:
        return parse_number(given) == truth_num
    truth_letter = letter_of(truth)
    if truth_letter is not None:
        return letter_of(given) == truth_letter
    return normalize_answer(given).casefold() == normalize_answer(truth).casefold()
