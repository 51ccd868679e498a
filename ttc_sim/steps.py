"""Reading solutions: which reference steps a text already contains (and whether they are
right), the final-answer step, and whether an answer is correct.

Steps are separated by a blank line (``"\\n\\n"``, the default step delimiter). A wrong step is
the reference step with one number changed (or, for a step without numbers, a wrong claim
appended), so a text's steps are matched to the reference by their *skeleton*, the step with
every number replaced by ``#``. A generated step may start with one of a few lead-ins
(:data:`LEAD_INS`, ``"Now: "`` ...), which matching ignores.

:func:`judge_chunks` gives the verdict on every step of a path (right so far, wrong, or not
recognised); the process reward model, the value judge and the critic all use it.
"""

from __future__ import annotations

import hashlib
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

#: Lead-ins a generated step may start with (no digits, so skeletons are unaffected).
LEAD_INS = (
    "Now: ",
    "Next: ",
    "OK. ",
    "Let's see. ",
    "We compute: ",
    "Working it out: ",
    "Calculating: ",
)

#: Verdicts of :func:`judge_chunks`.
GOOD, BAD, UNKNOWN = 1, -1, 0


def final_step(answer: str) -> str:
    """The last step of every sample."""
    return f"The final answer is $\\boxed{{{answer}}}$.\nANSWER: {answer}"


def skeleton(step: str) -> str:
    return _NUM.sub("#", step.strip())


def strip_lead_in(chunk: str) -> str:
    """``chunk`` without a leading :data:`LEAD_INS` phrase."""
    for lead in LEAD_INS:
        if chunk.startswith(lead):
            return chunk[len(lead) :]
    return chunk


def vary_step(step: str, r: random.Random, variety: float) -> str:
    """``step``, with probability ``variety`` behind a random lead-in."""
    if variety > 0 and r.random() < variety:
        return r.choice(LEAD_INS) + step
    return step


def match_step(chunk: str, reference: str) -> bool | None:
    """``True``: ``chunk`` is the reference step; ``False``: a wrong version of it; ``None``:
    another text altogether. A lead-in is ignored."""
    chunk = chunk.strip()
    if chunk == reference:
        return True
    chunk = strip_lead_in(chunk)
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


def split_chunks(text: str) -> list[str]:
    """The non-empty blank-line separated chunks of ``text``, stripped."""
    return [c for c in (c.strip() for c in _CHUNKS.split(text)) if c]


def is_final(chunk: str) -> bool:
    """Whether ``chunk`` states a final answer."""
    return _FINAL_MARK.search(chunk) is not None


def path_hash(chunks: list[str] | tuple[str, ...] = ()) -> hashlib.blake2b:
    """A running hash of a path's steps (update it with :func:`extend_hash`); generation keys
    its draws by it, so one seed gives different continuations of different prefixes."""
    h = hashlib.blake2b(digest_size=8)
    for c in chunks:
        extend_hash(h, c)
    return h


def extend_hash(h: hashlib.blake2b, chunk: str) -> None:
    h.update(chunk.strip().encode())
    h.update(b"\x1e")


def judge_chunks(problem: Problem, chunks: list[str]) -> list[int]:
    """A verdict for each chunk (a step) of a path: :data:`GOOD` when it and every step before
    it are right, :data:`BAD` when it or an earlier step is wrong, :data:`UNKNOWN` for a text
    that is no recognisable step on a path that is right so far.

    A final-answer step is good when the path is right so far and the answer is correct. Game
    of 24: a chunk's moves must be legal arithmetic on the board and leave 24 reachable.
    """
    out: list[int] = []
    ok = True
    if problem.family == "game24":
        board = game24.start_items(problem.numbers)
        for chunk in chunks:
            if is_final(chunk):
                ok = ok and is_correct(problem, extract_answer(chunk))
                out.append(GOOD if ok else BAD)
                continue
            found = False
            for line in game24.move_lines(chunk):
                found = True
                new = game24.apply_move(board, line) if ok else None
                if new is None:
                    ok = False
                    break
                board = new
                ok = game24.solvable([v for v, _ in board])
            out.append((GOOD if found else UNKNOWN) if ok else BAD)
        return out
    reference = problem.steps
    k = 0
    for chunk in chunks:
        if is_final(chunk):
            ok = ok and is_correct(problem, extract_answer(chunk))
            out.append(GOOD if ok else BAD)
            continue
        m = match_step(chunk, reference[k]) if k < len(reference) else None
        if m is None:
            out.append(UNKNOWN if ok else BAD)
            continue
        k += 1
        ok = ok and m
        out.append(GOOD if ok else BAD)
    return out


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
