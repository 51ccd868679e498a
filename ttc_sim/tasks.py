"""Task families with known ground truth, and the index that tells which problem a prompt is
about.

Families
--------
``gsm8k``
    The bundled sample of 200 GSM8K test problems (ids ``gsm8k-0`` ...). Steps are the solution
    lines with the ``<<...>>`` calculator annotations removed; the answer is the number after
    ``#### ``.
``synthetic``
    Generated multi-step arithmetic word problems, 2-6 steps, each question starting with its id,
    ``"Problem S-<seed>-<index>: ..."`` (:func:`synthetic_problems`); with a fixed number of
    steps ``k`` (``synthetic_problems(count, seed, steps=k)``) the id is ``S<k>-<seed>-<index>``.
    ``synthetic_problems(count, seed, steps=k, style="math")`` (ids ``M<k>-<seed>-<index>``)
    are the same problems with their steps written as MATH/PRM800K-style solutions are
    (``## Step 1: <what>`` then a sentence or two of working, 30-60 tokens a step, as the
    search-and-learn system prompt asks for), not GSM8K's one short line (~14 tokens).
``choice``
    Multiple-choice arithmetic questions with options A-E and a letter answer,
    ``"Problem C-<seed>-<index>: ..."`` (:func:`choice_problems`).
``graded``
    Problems of varying difficulty for adaptive compute (``"Problem D-<seed>-<index>: ..."``,
    :func:`graded_problems`): the synthetic word problem of the same seed and index, but each
    sample is right with a per-problem probability p drawn from Beta(``graded_alpha``,
    ``graded_beta``) keyed by the problem id (:func:`graded_accuracy`), and wrong samples
    concentrate on a few distractors (weights ``graded_skew`` ** i), so that voting is
    meaningful and some problems are hopeless.
``game24``
    The bundled 1,362 Game of 24 puzzles (``"Problem G-<rank>: ..."``, :func:`game24_problems`);
    steps are Tree-of-Thoughts moves (``13 - 9 = 4 (left: 4 4 10)``), the answer an expression.
    A prompt with a line ``Input: a b c d`` (the Tree-of-Thoughts prompts) is a Game of 24 too.
``generic``
    Any other prompt: three arithmetic steps (``Step 1: ...``) and an answer derived from a hash
    of the prompt, so that every prompt works.

The server regenerates synthetic and choice problems from the id in the prompt, so a client
can make any number of them with any seed and the server knows their answers.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

from . import game24
from .rng import rng_for, text_digest

FAMILIES = ("gsm8k", "synthetic", "graded", "choice", "game24", "generic")


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem with its reference solution steps and final answer."""

    id: str
    family: str
    question: str
    answer: str
    steps: list[str]
    #: The four numbers of a Game of 24 puzzle; empty for the other families.
    numbers: tuple[int, ...] = field(default=())


# ---------------------------------------------------------------------------- gsm8k

_CALC = re.compile(r"<<[^>]*>>")


def _read_data(name: str) -> str:
    return resources.files("ttc_sim").joinpath("data", name).read_text(encoding="utf-8")


@cache
def _gsm8k_all() -> tuple[Problem, ...]:
    problems = []
    for i, line in enumerate(_read_data("gsm8k_sample.jsonl").splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        body, _, answer = row["answer"].rpartition("#### ")
        steps = [_CALC.sub("", s).strip() for s in body.splitlines()]
        problems.append(
            Problem(
                id=f"gsm8k-{i}",
                family="gsm8k",
                question=row["question"],
                answer=answer.strip(),
                steps=[s for s in steps if s],
            )
        )
    return tuple(problems)


def gsm8k_problems(limit: int | None = None) -> list[Problem]:
    """The bundled GSM8K sample (200 problems), or its first ``limit``."""
    problems = _gsm8k_all()
    return list(problems if limit is None else problems[:limit])


# ---------------------------------------------------------------------------- synthetic

_NAMES = (
    "Alice", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jamal",
    "Kira", "Liam", "Mona", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sami", "Tara",
)  # fmt: skip
_ITEMS = (
    "apples", "marbles", "stickers", "books", "coins", "pencils", "cards", "shells",
    "stamps", "beads", "cookies", "tickets",
)  # fmt: skip


#: The most steps a synthetic problem may be asked to have.
MAX_SYNTHETIC_STEPS = 30


#: Step styles of synthetic problems: one GSM8K-like line, or MATH-style worked steps.
StepStyle = Literal["plain", "math"]


@cache
def synthetic_problem(
    seed: int, index: int, steps: int | None = None, style: StepStyle = "plain"
) -> Problem:
    """Synthetic problem number ``index`` of the set drawn with ``seed``: 2-6 steps, or exactly
    ``steps`` (1 to :data:`MAX_SYNTHETIC_STEPS`) when given. ``style="math"`` (``steps``
    required): the same problem, each step a ``## Step k:`` heading and its working."""
    if style == "math":
        if steps is None:
            raise ValueError("math-style synthetic problems need a fixed number of steps")
        base, worked = _synthetic(seed, index, steps)
        pid = f"M{steps}-{seed}-{index}"
        question = base.question.replace(f"Problem {base.id}:", f"Problem {pid}:", 1)
        return Problem(pid, "synthetic", question, base.answer, list(worked))
    return _synthetic(seed, index, steps)[0]


@cache
def _synthetic(seed: int, index: int, steps: int | None) -> tuple[Problem, tuple[str, ...]]:
    """The plain synthetic problem and its steps written MATH-style."""
    if steps is None:
        r = rng_for("synthetic", seed, index)
        pid = f"S-{seed}-{index}"
    else:
        if not 1 <= steps <= MAX_SYNTHETIC_STEPS:
            raise ValueError(f"steps must be between 1 and {MAX_SYNTHETIC_STEPS}, got {steps}")
        r = rng_for("synthetic", seed, index, "steps", steps)
        pid = f"S{steps}-{seed}-{index}"
    name, item = r.choice(_NAMES), r.choice(_ITEMS)
    pronoun = r.choice(("She", "He"))
    start = value = r.randint(5, 60)
    facts: list[str] = []
    solution: list[str] = []
    worked: list[str] = []  # the same steps, MATH-style
    they = pronoun.lower()
    for k in range(1, 1 + (r.randint(2, 6) if steps is None else steps)):
        kinds = ["buy", "find", "double"]
        if value > 3:
            kinds.append("give")
        if value % 2 == 0 and value > 2:
            kinds.append("half")
        if value > 2000:
            kinds = [k for k in kinds if k not in ("buy", "double")] or ["give"]
        kind = r.choice(kinds)
        if kind == "buy":
            bags, each = r.randint(2, 9), r.randint(2, 12)
            total = bags * each
            facts.append(f"{pronoun} buys {bags} bags with {each} {item} in each.")
            solution.append(
                f"Buying {bags} bags of {each} {item} adds {bags} * {each} = {total} {item}, "
                f"so {name} has {value} + {total} = {value + total} {item}."
            )
            worked.append(
                f"## Step {k}: Add the {item} in the bags\n"
                f"Each of the {bags} bags holds {each} {item}, so the bags hold "
                f"{bags} * {each} = {total} {item} in all. Adding them to the {value} {item} "
                f"{name} already has gives {value} + {total} = {value + total} {item}."
            )
            value += total
        elif kind == "find":
            found = r.randint(2, 40)
            facts.append(f"{pronoun} finds {found} more {item}.")
            solution.append(
                f"Finding {found} more gives {value} + {found} = {value + found} {item}."
            )
            worked.append(
                f"## Step {k}: Add the {item} {they} finds\n"
                f"{name} had {value} {item} and finds {found} more, so the total goes up by "
                f"{found}: {value} + {found} = {value + found} {item}."
            )
            value += found
        elif kind == "double":
            facts.append(f"Then the number of {item} {name} has doubles.")
            solution.append(f"Doubling gives {value} * 2 = {value * 2} {item}.")
            worked.append(
                f"## Step {k}: Double the number of {item}\n"
                f"The {value} {item} {name} has double, so we multiply by 2: "
                f"{value} * 2 = {value * 2} {item}."
            )
            value *= 2
        elif kind == "give":
            gone = r.randint(1, value - 1)
            facts.append(f"{pronoun} gives away {gone} {item}.")
            solution.append(f"Giving away {gone} leaves {value} - {gone} = {value - gone} {item}.")
            worked.append(
                f"## Step {k}: Subtract the {item} {they} gives away\n"
                f"{name} gives away {gone} of the {value} {item}, so we subtract them: "
                f"{value} - {gone} = {value - gone} {item} are left."
            )
            value -= gone
        else:
            facts.append(f"Then {name} gives half of the {item} to a friend.")
            solution.append(f"Giving half away leaves {value} / 2 = {value // 2} {item}.")
            worked.append(
                f"## Step {k}: Halve the number of {item}\n"
                f"Half of the {value} {item} go to a friend, so {name} keeps the other half: "
                f"{value} / 2 = {value // 2} {item}."
            )
            value //= 2
    question = (
        f"Problem {pid}: {name} has {start} {item}. "
        + " ".join(facts)
        + f" How many {item} does {name} have at the end?"
    )
    return Problem(pid, "synthetic", question, str(value), solution), tuple(worked)


def synthetic_problems(
    count: int, seed: int = 0, steps: int | None = None, style: StepStyle = "plain"
) -> list[Problem]:
    """``count`` distinct synthetic word problems (ids ``S-<seed>-0`` ...), each with 2-6 steps,
    or exactly ``steps`` steps when given (ids ``S<steps>-<seed>-0`` ...); ``style="math"``:
    the same problems with MATH-style steps (ids ``M<steps>-<seed>-0`` ...)."""
    return [synthetic_problem(seed, i, steps, style) for i in range(count)]


# ---------------------------------------------------------------------------- graded


@cache
def graded_problem(seed: int, index: int) -> Problem:
    """Graded problem number ``index`` of the set drawn with ``seed``: the synthetic problem
    of that seed and index under the id ``D-<seed>-<index>`` (its accuracy is per problem)."""
    base = synthetic_problem(seed, index)
    pid = f"D-{seed}-{index}"
    question = base.question.replace(f"Problem {base.id}:", f"Problem {pid}:", 1)
    return Problem(pid, "graded", question, base.answer, base.steps)


def graded_problems(count: int, seed: int = 0) -> list[Problem]:
    """``count`` graded problems (ids ``D-<seed>-0`` ...)."""
    return [graded_problem(seed, i) for i in range(count)]


def graded_accuracy(problem_id: str, alpha: float, beta: float) -> float:
    """The per-sample accuracy p of a graded problem: one Beta(alpha, beta) draw keyed by
    the problem id (the same problem is as hard in every run with the same knobs)."""
    return rng_for("graded-p", problem_id, alpha, beta).betavariate(alpha, beta)


# ---------------------------------------------------------------------------- choice

LETTERS = "ABCDE"


@cache
def choice_problem(seed: int, index: int) -> Problem:
    """Multiple-choice problem number ``index`` of the set drawn with ``seed``."""
    r = rng_for("choice", seed, index)
    a, b, c = r.randint(3, 19), r.randint(3, 19), r.randint(2, 30)
    form = r.randrange(3)
    if form == 0:
        expr, first, value = f"{a} * {b} + {c}", a * b, a * b + c
        steps = [f"First, {a} * {b} = {first}.", f"Then {first} + {c} = {value}."]
    elif form == 1:
        expr, first, value = f"{a} * {b} - {c}", a * b, a * b - c
        steps = [f"First, {a} * {b} = {first}.", f"Then {first} - {c} = {value}."]
    else:
        expr, first, value = f"({a} + {b}) * {c}", a + b, (a + b) * c
        steps = [f"First, {a} + {b} = {first}.", f"Then {first} * {c} = {value}."]
    options = {value}
    while len(options) < len(LETTERS):
        options.add(value + r.choice((-1, 1)) * r.randint(1, 12))
    wrong = sorted(options - {value})
    r.shuffle(wrong)
    letter = r.choice(LETTERS)
    values = wrong[:]
    values.insert(LETTERS.index(letter), value)
    listing = " ".join(f"{L}) {v}" for L, v in zip(LETTERS, values, strict=True))
    steps.append(f"Option {letter} is {value}, which matches.")
    question = f"Problem C-{seed}-{index}: What is {expr}? {listing}"
    return Problem(f"C-{seed}-{index}", "choice", question, letter, steps)


def choice_problems(count: int, seed: int = 0) -> list[Problem]:
    """``count`` multiple-choice problems (ids ``C-<seed>-0`` ...)."""
    return [choice_problem(seed, i) for i in range(count)]


# ---------------------------------------------------------------------------- game24


@cache
def _game24_rows() -> tuple[tuple[int, tuple[int, ...]], ...]:
    rows = csv.DictReader(io.StringIO(_read_data("game24.csv")))
    return tuple((int(row["Rank"]), tuple(int(x) for x in row["Puzzles"].split())) for row in rows)


def _game24_question(pid: str, numbers: tuple[int, ...]) -> str:
    nums = " ".join(str(n) for n in numbers)
    return (
        f"Problem {pid}: Use the numbers {nums} and basic arithmetic operations (+ - * /) "
        "to obtain 24. Each number must be used exactly once."
    )


@cache
def game24_problem(numbers: tuple[int, ...], rank: int | None = None) -> Problem | None:
    """The Game of 24 puzzle on ``numbers`` (``None`` if it has no solution)."""
    path = game24.solution_moves(numbers)
    if path is None:
        return None
    pid = f"G-{rank}" if rank is not None else "G-" + "-".join(str(n) for n in numbers)
    return Problem(
        id=pid,
        family="game24",
        question=_game24_question(pid, numbers),
        answer=game24.final_expression(path[-1].items),
        steps=[m.line for m in path],
        numbers=numbers,
    )


def game24_by_rank(rank: int) -> Problem | None:
    """Puzzle of rank ``rank`` (1-1362) of the bundled set."""
    rows = _game24_rows()
    if not 1 <= rank <= len(rows):
        return None
    return game24_problem(rows[rank - 1][1], rows[rank - 1][0])


def game24_problems(start: int = 1, stop: int | None = None) -> list[Problem]:
    """Puzzles of ranks ``start`` .. ``stop - 1`` (Tree-of-Thoughts tested on 901-1000)."""
    stop = len(_game24_rows()) + 1 if stop is None else stop
    out = [game24_by_rank(r) for r in range(start, stop)]
    return [p for p in out if p is not None]


# ---------------------------------------------------------------------------- generic

_GENERIC_CUT = re.compile(r"\s*Step 1:")


def generic_problem(text: str) -> Problem:
    """The generic problem for a prompt that is none of the known ones."""
    question = _GENERIC_CUT.split(text, maxsplit=1)[0].strip()
    digest = text_digest(question, 6)
    r = rng_for("generic", question)
    a, b = r.randint(2, 60), r.randint(2, 40)
    steps = [
        f"Step 1: Let x = {a}.",
        f"Step 2: Doubling x gives {a} * 2 = {2 * a}.",
        f"Step 3: Adding {b} gives {2 * a} + {b} = {2 * a + b}.",
    ]
    return Problem(f"generic-{digest}", "generic", question, str(2 * a + b), steps)


# ---------------------------------------------------------------------------- index

_ID = re.compile(r"Problem (S|C|D|M)(\d*)-(-?\d+)-(\d+):")
_G_ID = re.compile(r"Problem G-(\d+(?:-\d+){0,3}):")
_TOT_INPUT = re.compile(r"(?m)^\s*Input:\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")


def _squash(text: str) -> str:
    return " ".join(text.split())


class ProblemIndex:
    """Finds which known problem a text is about.

    Order: ids of synthetic, choice and Game of 24 problems (regenerated from the id); the last
    occurrence of a known question (GSM8K sample and :meth:`add`-ed problems) as an exact
    substring, then with whitespace squashed; a Tree-of-Thoughts ``Input: a b c d`` line; else a
    generic problem. Results are cached by text (bounded LRU).
    """

    def __init__(self, problems: list[Problem] | None = None, include_gsm8k: bool = True):
        self._known: dict[str, Problem] = {}
        self._squashed: dict[str, Problem] = {}
        self._cache: OrderedDict[str, tuple[Problem, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_size = 8192
        for p in gsm8k_problems() if include_gsm8k else []:
            self.add(p)
        for p in problems or []:
            self.add(p)

    def add(self, problem: Problem) -> None:
        """Make ``problem`` findable by its question."""
        with self._lock:
            self._known[problem.question] = problem
            self._squashed[_squash(problem.question)] = problem
            self._cache.clear()

    def find(self, text: str) -> Problem:
        """The problem ``text`` is about (a generic one if none is known)."""
        return self.locate(text)[0]

    def locate(self, text: str) -> tuple[Problem, int]:
        """(problem, offset in ``text`` just after its question; 0 if not found verbatim)."""
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        found = self._locate(text)
        with self._lock:
            self._cache[text] = found
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def _locate(self, text: str) -> tuple[Problem, int]:
        best: tuple[Problem, int] | None = None
        best_pos = -1
        ids = list(_ID.finditer(text))
        if ids:
            m = ids[-1]
            kind, size, seed, index = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
            p: Problem | None = None
            if kind == "C" and not size:
                p = choice_problem(seed, index)
            elif kind == "S" and not size:
                p = synthetic_problem(seed, index)
            elif kind == "D" and not size:
                p = graded_problem(seed, index)
            elif kind == "S" and 1 <= int(size) <= MAX_SYNTHETIC_STEPS:
                p = synthetic_problem(seed, index, int(size))
            elif kind == "M" and size and 1 <= int(size) <= MAX_SYNTHETIC_STEPS:
                p = synthetic_problem(seed, index, int(size), "math")
            if p is not None:
                best, best_pos = (p, self._end_of(text, p, m.start())), m.start()
        gids = list(_G_ID.finditer(text))
        if gids and gids[-1].start() > best_pos:
            m = gids[-1]
            parts = [int(x) for x in m.group(1).split("-")]
            g = game24_by_rank(parts[0]) if len(parts) == 1 else game24_problem(tuple(parts))
            if g is not None:
                best, best_pos = (g, self._end_of(text, g, m.start())), m.start()
        if best is not None:
            return best
        for question, p in list(self._known.items()):
            pos = text.rfind(question)
            if pos > best_pos:
                best, best_pos = (p, pos + len(question)), pos
        if best is not None:
            return best
        tot = list(_TOT_INPUT.finditer(text))
        if tot:
            nums = tuple(sorted(int(x) for x in tot[-1].groups()))
            g = game24_problem(nums)
            if g is not None:
                return g, tot[-1].end()
        squashed = _squash(text)
        for question, p in list(self._squashed.items()):
            pos = squashed.rfind(question)
            if pos > best_pos:
                best, best_pos = (p, 0), pos
        if best is not None:
            return best
        g = generic_problem(text)
        pos = text.find(g.question)
        return g, (pos + len(g.question) if pos >= 0 else 0)

    @staticmethod
    def _end_of(text: str, problem: Problem, start: int) -> int:
        if text.startswith(problem.question, start):
            return start + len(problem.question)
        stop = text.find("\n\n", start)
        return len(text) if stop < 0 else stop


_DEFAULT: ProblemIndex | None = None


def default_index() -> ProblemIndex:
    """The shared index over the bundled problems."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ProblemIndex()
    return _DEFAULT


def find_problem(text: str) -> Problem:
    """Which problem ``text`` (a prompt, chat messages joined, or prompt + response) is about."""
    return default_index().find(text)
