"""Reading solutions: which reference steps a text already contains (and whether they are
right), the final-answer step, and whether an answer is correct.

Steps are separated by a blank line (``"\\n\\n"``, the default step delimiter). A wrong step is
the reference step with one number changed (or, for a step without numbers, a wrong claim
appended), so a text's steps are matched to the reference by their *skeleton*, the step with
every number replaced by ``#``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from . import game24
from .answers import answers_match, extract_answer
from .tasks import Problem

STEP_DELIMITER = "\n\n"

_NUM = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_CHUNKS = re.compile(r"\n[ \t]*\n")
_FINAL_MARK = re.compile(r"ANSWER:|\\boxed\{")
_NO_NUMBER_CLAIM = " That gives {n}."


def final_step(answer: str) -> str:
    """The last step of every sample."""
    return f"The final answer is $\\boxed{{{answer}}}$.\nANSWER: {answer}"


def skeleton(step: str) -> str:
    return _NUM.sub("#", step.strip())


def match_step(chunk: str, reference: str) -> bool | None:
    """``True``: ``chunk`` is the reference step; ``False``: a wrong version of it; ``None``:
    another text altogether."""
    chunk = chunk.strip()
    if chunk == reference:
        return True
    sk = skeleton(chunk)
    ref = skeleton(reference)
    if sk == ref or sk == ref + _NO_NUMBER_CLAIM.format(n="#"):
        return False
    return None


def corrupt_step(step: str, r: random.Random) -> str:
    """A visibly wrong version of ``step``: its last number changed."""
    numbers = list(_NUM.finditer(step))
    if not numbers:
        return step + _NO_NUMBER_CLAIM.format(n=r.randint(2, 99))
    m = numbers[-1]
    raw = m.group(0)
    whole, _, frac = raw.replace(",", "").partition(".")
    value = int(whole)
    delta = r.randint(1, max(2, value // 5 + 1)) * r.choice((-1, 1))
    new = value + delta
    if new < 0 or new == value:
        new = value + r.randint(1, 9)
    text = f"{new:,}" if "," in raw else str(new)
    if frac:
        text += "." + frac
    return step[: m.start()] + text + step[m.end() :]


def is_correct(problem: Problem, answer: str | None) -> bool:
    """Whether ``answer`` solves ``problem``."""
    if answer is None:
        return False
    if problem.family == "game24":
        return game24.check_expression(answer, problem.numbers)
    return answers_match(answer, problem.answer)


@dataclass(slots=True)
class Progress:
    """What a text (the part after the question) already holds of a solution."""

    #: Reference steps present (moves made, for Game of 24).
    steps: int = 0
    #: Whether all of them are right.
    ok: bool = True
    #: The text already ends with a final answer: nothing is left to generate.
    done: bool = False
    answer: str | None = None
    #: Game of 24: the board after the moves.
    board: tuple[game24.Item, ...] = field(default=())


def read_progress(problem: Problem, text: str) -> Progress:
    """How far ``text`` has got through ``problem``.

    A final-answer step followed by more text starts a new attempt: only the chunks after it
    count.
    """
    chunks = [c.strip() for c in _CHUNKS.split(text)]
    chunks = [c for c in chunks if c]
    finals = [i for i, c in enumerate(chunks) if _FINAL_MARK.search(c)]
    if finals:
        if finals[-1] == len(chunks) - 1:
            answer = extract_answer(chunks[-1])
            progress = read_progress(problem, "\n\n".join(chunks[:-1]))
            progress.done, progress.answer = True, answer
            return progress
        chunks = chunks[finals[-1] + 1 :]
    if problem.family == "game24":
        board, moves, legal = game24.replay("\n".join(chunks), problem.numbers)
        ok = legal and game24.solvable([v for v, _ in board])
        return Progress(steps=moves, ok=ok, board=board)
    progress = Progress()
    reference = problem.steps
    for chunk in chunks:
        if progress.steps >= len(reference):
            break
        m = match_step(chunk, reference[progress.steps])
        if m is not None:
            progress.ok = progress.ok and m
            progress.steps += 1
    return progress


def separator_after(prefix: str, progress: Progress) -> str:
    """What a continuation must start with so that the steps stay blank-line separated."""
    if progress.steps == 0 or prefix.endswith("\n\n"):
        return ""
    return "\n" if prefix.endswith("\n") else "\n\n"
