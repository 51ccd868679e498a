"""Step-level judges that answer ttc's own prompt templates: tree-of-thoughts value votes and
Self-Refine critiques and revisions.

A generation request (chat or completions) is one of these when its prompt holds the template's
marker line (copied from ``ttc_core/search/prompts.py``; the simulator does not import the engine):

Value (:data:`VALUE_MARKER`)
    ``... Problem:\\n{question}\\n\\nPartial solution:\\n{steps}\\n\\nJudgement:``. Each choice is
    one word. The truth is whether the partial solution can still reach a right answer (every
    step right so far; Game of 24: every move legal and 24 still reachable from the numbers
    left). With probability ``judge_accuracy`` the vote has the right polarity: ``sure`` or
    ``likely`` (evenly) for a possible path, ``impossible`` for a dead one; otherwise
    ``impossible`` for a possible path, ``likely`` (3 in 4) or ``sure`` for a dead one. Game of
    24 paths use ``game24_value_accuracy`` instead when it is set.
Critique (:data:`CRITIQUE_MARKER`)
    ``... Problem:\\n{question}\\n\\nSolution:\\n{solution}\\n\\nCritique:``, optionally with the
    line ``An automatic check of this solution reported: ...``. Steps are the solution's
    blank-line separated chunks, numbered from 1. With probability ``critic_accuracy``
    (``critic_feedback_accuracy`` when the feedback line says the solution is wrong) the critique
    is right: ``Step k is incorrect: <reason>`` for the first wrong step ``k``, or
    ``No errors.`` for a right solution. Otherwise it is plausible but wrong: another step
    named as incorrect, or ``No errors.`` for a wrong solution.
Revision (:data:`REVISE_MARKER`)
    ``Problem:\\n{question}\\n\\nPrevious attempt:\\n{solution}\\n\\nCritique:\\n{critique}``
    then the marker.
    The answer is a whole solution in the usual sample format. When the critique names the
    previous attempt's real first wrong step ``k`` (``Step k is incorrect``), steps ``1..k-1``
    are kept and the rest regenerated with the accuracy raised to ``p + (1 - p) * revise_gain``
    (``step_accuracy``, ``game24_skill`` and its per-move variants, and ``sample_accuracy``
    alike). When it says
    ``No errors.`` and the attempt is right so far, the attempt is kept (and finished if it has
    no final answer). Any other critique gives a plain new sample.

Every draw is seeded by (problem, seed, the text judged), so ``n`` choices with seeds
``s, s+1, ...`` are independent votes and a repeated request repeats its answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from . import game24
from .config import SimConfig
from .model import Sample, generate
from .rng import rng_for, stable_seed
from .steps import BAD, STEP_DELIMITER, is_final, judge_chunks, path_hash, split_chunks
from .tasks import Problem, ProblemIndex

VALUE_MARKER = "Reply with one word: sure, likely or impossible."
CRITIQUE_MARKER = 'Point out the first incorrect step, or reply "No errors." if it is correct.'
REVISE_MARKER = "Write an improved solution step by step, using the critique."
FEEDBACK_PREFIX = "An automatic check of this solution reported:"
NO_ERRORS = "No errors."

JudgeKind = Literal["value", "critique", "revise"]

_NAMED_STEP = re.compile(r"(?i)\bstep\s+(\d+)\s+is\s+(?:incorrect|wrong)")
_NO_ERRORS = re.compile(r"(?i)\bno errors?\b")
_SAYS_WRONG = re.compile(
    r"(?i)\b(?:wrong|incorrect|fail(?:s|ed|ure)?|not correct|mismatch|does not match|"
    r"rejected|error|invalid)\b"
)


@dataclass(slots=True)
class JudgeRequest:
    """A parsed value, critique or revision prompt."""

    kind: JudgeKind
    problem: Problem
    #: The steps judged: the partial solution, the solution, or the previous attempt.
    chunks: list[str]
    #: The verdict on each chunk (see :func:`ttc_sim.steps.judge_chunks`).
    verdicts: list[int]
    #: A stable digest of the chunks (and of the critique, for a revision).
    digest: str
    #: Critique: the verifier's feedback line says the solution is wrong.
    feedback_wrong: bool = False
    #: Revision: the critique's text.
    critique: str = ""

    @property
    def first_bad(self) -> int | None:
        """Index (from 0) of the first wrong chunk, or None."""
        return next((i for i, v in enumerate(self.verdicts) if v == BAD), None)


def judge_kind(text: str) -> JudgeKind | None:
    """Which judge prompt ``text`` is, if any."""
    if REVISE_MARKER in text:
        return "revise"
    if CRITIQUE_MARKER in text:
        return "critique"
    if VALUE_MARKER in text:
        return "value"
    return None


def _between(text: str, start: str, end: str, at: int = 0) -> str | None:
    i = text.find(start, at)
    if i < 0:
        return None
    i += len(start)
    j = text.find(end, i)
    return None if j < 0 else text[i:j]


def _last_between(text: str, start: str, end: str) -> str | None:
    j = text.rfind(end)
    if j < 0:
        j = len(text)
    i = text.rfind(start, 0, j)
    if i < 0:
        return None
    return text[i + len(start) : j]


def parse_judge_prompt(text: str, index: ProblemIndex) -> JudgeRequest | None:
    """The judge request in ``text`` (a prompt, or chat messages joined), or None."""
    kind = judge_kind(text)
    if kind is None:
        return None
    section = {"value": "Partial solution", "critique": "Solution", "revise": "Previous attempt"}[
        kind
    ]
    marker = {"value": VALUE_MARKER, "critique": CRITIQUE_MARKER, "revise": ""}[kind]
    question = _between(text, "Problem:\n", f"\n\n{section}:\n", max(0, text.find(marker)))
    problem = index.find(question or text)
    critique = ""
    feedback_wrong = False
    if kind == "value":
        body = _last_between(text, "Partial solution:\n", "\n\nJudgement:") or ""
        if body.strip() == "(none)":
            body = ""
    elif kind == "critique":
        body = _last_between(text, "\n\nSolution:\n", "\n\nCritique:") or ""
        line = text.find(FEEDBACK_PREFIX)
        if line >= 0:
            feedback = text[line + len(FEEDBACK_PREFIX) :].split("\n", 1)[0]
            feedback = _NO_ERRORS.sub("", feedback)
            feedback_wrong = _SAYS_WRONG.search(feedback) is not None
    else:
        end = text.rfind("\n\n" + REVISE_MARKER)
        head = text[:end] if end >= 0 else text
        cut = head.rfind("\n\nCritique:\n")
        if cut >= 0:
            critique = head[cut + len("\n\nCritique:\n") :].strip()
            head = head[:cut]
        start = head.rfind("Previous attempt:\n")
        body = head[start + len("Previous attempt:\n") :] if start >= 0 else ""
    chunks = split_chunks(body)
    h = path_hash(chunks)
    if critique:
        h.update(critique.encode())
    return JudgeRequest(
        kind=kind,
        problem=problem,
        chunks=chunks,
        verdicts=judge_chunks(problem, chunks),
        digest=h.hexdigest(),
        feedback_wrong=feedback_wrong,
        critique=critique,
    )


def answer_judge(req: JudgeRequest, seed: int, cfg: SimConfig) -> Sample:
    """The answer of one choice (with ``seed``) to a judge request."""
    if req.kind == "value":
        return value_vote(req, seed, cfg)
    if req.kind == "critique":
        return critique(req, seed, cfg)
    return revise(req, seed, cfg)


# --------------------------------------------------------------------------------- value


def value_vote(req: JudgeRequest, seed: int, cfg: SimConfig) -> Sample:
    """One ``sure``/``likely``/``impossible`` vote; ``correct`` tells whether its polarity is
    right."""
    possible = req.first_bad is None
    r = rng_for("value", req.problem.id, seed, req.digest)
    accuracy = cfg.judge_accuracy
    if req.problem.family == "game24" and cfg.game24_value_accuracy is not None:
        accuracy = cfg.game24_value_accuracy
    right = r.random() < accuracy
    if possible:
        word = ("sure" if r.random() < 0.5 else "likely") if right else "impossible"
    else:
        word = "impossible" if right else ("likely" if r.random() < 0.75 else "sure")
    return Sample(word, None, right)


# ------------------------------------------------------------------------------ critique


def _reason(problem: Problem, chunks: list[str], k: int) -> str:
    """Why step ``k`` (from 0) is said to be wrong."""
    chunk = chunks[k] if k < len(chunks) else ""
    if is_final(chunk):
        return "the final answer does not follow from the steps."
    if problem.family == "game24":
        moves = game24.move_lines(chunk)
        if moves:
            left = moves[-1].rpartition("left:")[2].strip(" )")
            return f"24 cannot be reached from the numbers left ({left})."
        return "it does not make a legal move."
    return "the calculation in this step is wrong."


def critique(req: JudgeRequest, seed: int, cfg: SimConfig) -> Sample:
    """A critique of the solution; ``correct`` tells whether the critique is right."""
    r = rng_for("critique", req.problem.id, seed, req.digest, req.feedback_wrong)
    accuracy = cfg.critic_feedback_accuracy if req.feedback_wrong else cfg.critic_accuracy
    right = r.random() < accuracy
    bad = req.first_bad
    n = len(req.chunks)
    named: int | None
    if right:
        named = bad
    elif bad is None:
        named = r.randrange(n) if n else None
    else:
        others = [i for i in range(n) if i != bad]
        named = r.choice(others) if others and r.random() < 0.5 else None
    if named is None:
        text = NO_ERRORS
    else:
        text = f"Step {named + 1} is incorrect: {_reason(req.problem, req.chunks, named)}"
    return Sample(text, None, named == bad)


# -------------------------------------------------------------------------------- revise


def boosted(cfg: SimConfig) -> SimConfig:
    """``cfg`` with its accuracies raised by ``revise_gain``."""
    gain = cfg.revise_gain

    def up(p: float) -> float:
        return p + (1.0 - p) * gain

    update: dict[str, float | None] = {
        "step_accuracy": up(cfg.step_accuracy),
        "game24_skill": up(cfg.game24_skill),
    }
    for key in ("sample_accuracy", "game24_propose_skill", "game24_sample_skill"):
        value = getattr(cfg, key)
        if value is not None:
            update[key] = up(value)
    return cfg.model_copy(update=update)


def revise(req: JudgeRequest, seed: int, cfg: SimConfig) -> Sample:
    """A whole new solution (see the module docstring)."""
    new_seed = stable_seed("revise", seed, req.digest) >> 16
    bad = req.first_bad
    m = _NAMED_STEP.search(req.critique)
    if m is not None and bad is not None and int(m.group(1)) == bad + 1:
        kept, use = req.chunks[:bad], boosted(cfg)
    elif m is None and bad is None and _NO_ERRORS.search(req.critique) and req.chunks:
        kept, use = req.chunks, cfg
    else:
        kept, use = [], cfg
    head = STEP_DELIMITER.join(kept)
    prefix = head + STEP_DELIMITER if kept else ""
    sample = generate(req.problem, new_seed, use, prefix)
    text = prefix + sample.text if sample.text else head
    kept_steps = [c for c, v in zip(kept, req.verdicts, strict=False) if not is_final(c)]
    kept_ok = [v != BAD for c, v in zip(kept, req.verdicts, strict=False) if not is_final(c)]
    return Sample(
        text,
        sample.answer,
        sample.correct,
        kept_ok + sample.steps_correct,
        kept_steps + sample.steps,
        [(a + len(prefix), b + len(prefix)) for a, b in sample.bad_spans],
    )
