"""The simulated language model: pure, deterministic generation with no I/O.

A sample is the reasoning steps separated by blank lines, then the final step::

    <step 1>\\n\\n<step 2>\\n\\n...\\n\\nThe final answer is $\\boxed{X}$.\\nANSWER: X

The final step holds no blank line, so a client stopping at ``"\\n\\n"`` gets it as one step.
Each step is right with probability ``step_accuracy`` (a wrong step has one number changed)
and any wrong step makes the answer wrong; with ``sample_accuracy`` set, correctness is drawn
once per sample with exactly that probability (a wrong sample then has one wrong step). A step,
right or wrong, may start with a lead-in (``step_variety``), so that the right continuations of
one prefix differ between seeds. A wrong answer is drawn uniformly from the problem's
``distractors`` distinct wrong answers. Game of 24 samples make three legal moves, each keeping
24 reachable with probability ``game24_skill`` (when such a move exists; otherwise any legal
move); their answer is the expression the moves build, right or wrong. With the Game of 24
realism knobs a generation's first move (made on the board its prompt shows) and its later
moves have their own skills, shifted per puzzle, and a miss may be a dead end
(:func:`ttc_sim.game24.move_skills`); a cut sample continued with its own seed then comes
out whole only when the two skills are equal.

Every draw comes from ``random.Random`` seeded by a stable hash of (problem id, seed, what is
drawn, step index, the path so far), so a sample depends only on (problem, seed, config,
prefix): choice ``i`` of a request with ``seed=s`` is generated with seed ``s + i``, exactly as
a request with ``seed=s+i`` and ``n=1``.

Continuation: when the text after the question already holds some steps (the completions
prompt, or a final assistant message), only the remaining steps are generated. Once a step of
the prefix is wrong (whoever wrote it), the path stays wrong and ends with a distractor; a right
prefix can still reach the right answer. Draws are keyed by the steps of the path so far, so
one seed continues different prefixes independently, while a sample cut at a step boundary and
continued with its own seed comes out whole again (its prefix is the path its own draws saw).
(``sample_accuracy`` mode draws once per (problem, seed), whatever the prefix.)
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from . import game24
from .answers import parse_number
from .config import SimConfig
from .rng import rng_for
from .steps import (
    STEP_DELIMITER,
    Progress,
    corrupt_step,
    extend_hash,
    final_step,
    is_correct,
    path_hash,
    read_progress,
    separator_after,
    split_chunks,
    vary_step,
)
from .tasks import LETTERS, Problem, graded_accuracy
from .thinking import THINK_CLOSE, THINK_OPEN, ThoughtState, accuracy_at, read_thought, segment
from .tokens import count_tokens

_OFFSETS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 50, 100)


@dataclass(slots=True)
class Sample:
    """One generated completion."""

    #: The generated text (only the new part when continuing).
    text: str
    #: The final answer stated by the sample (for a continuation that ends without one: None).
    answer: str | None
    #: Whether the final answer is right (for a continuation: the whole path's answer).
    correct: bool
    #: Right or wrong, for each newly generated reasoning step (not the final-answer step).
    steps_correct: list[bool] = field(default_factory=list)
    #: The newly generated reasoning steps.
    steps: list[str] = field(default_factory=list)
    #: Character spans of ``text`` that hold wrong steps (for plausible logprobs).
    bad_spans: list[tuple[int, int]] = field(default_factory=list)


def _format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return format(float(value), "g")


def distractor_answers(problem: Problem, count: int) -> list[str]:
    """The problem's first ``count`` wrong answers (distinct, never the truth; the list for a
    smaller count is a prefix of the list for a larger one). Multiple choice has at most 4."""
    return list(_distractors(problem.id, problem.family, problem.answer, count))


@lru_cache(maxsize=20_000)
def _distractors(pid: str, family: str, answer: str, count: int) -> tuple[str, ...]:
    r = rng_for("distractors", pid)
    if family == "choice":
        wrong = [letter for letter in LETTERS if letter != answer]
        r.shuffle(wrong)
        return tuple(wrong[:count])
    truth = parse_number(answer)
    if truth is None:
        return tuple(f"{answer} ({i + 1})" for i in range(count))
    out: list[str] = []
    seen = {truth}
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 50 * count + 100:
            candidate = truth + 1000 + attempts
        elif r.random() < 0.15:
            candidate = truth * 2 if r.random() < 0.5 or truth.denominator != 1 else truth / 2
        else:
            candidate = truth + r.choice((-1, 1)) * r.choice(_OFFSETS)
        if candidate in seen or (truth >= 0 and candidate < 0):
            continue
        if candidate.denominator != 1 and truth.denominator == 1:
            continue
        seen.add(candidate)
        out.append(_format_number(candidate))
    return tuple(out)


def generate(
    problem: Problem, seed: int, cfg: SimConfig, prefix: str = "", *, think: bool = False
) -> Sample:
    """A sample for ``problem`` with ``seed``; ``prefix`` is what already follows the question
    (steps of a partial solution to continue), empty for a fresh sample. ``think``: the request
    asked for thinking (see :mod:`ttc_sim.thinking`; a prefix opening ``<think>`` does too)."""
    thought = read_thought(prefix, start=think or cfg.think_always)
    if thought is not None:
        return _generate_after_thought(problem, seed, cfg, prefix, thought)
    progress = read_progress(problem, prefix) if prefix else Progress()
    if progress.done:
        return Sample("", progress.answer, is_correct(problem, progress.answer))
    sep = separator_after(prefix, progress)
    h = path_hash(split_chunks(prefix) if prefix else ())
    if problem.family == "game24":
        return _generate_game24(problem, seed, cfg, progress, sep, h)
    reference = problem.steps
    new_steps: list[str] = []
    steps_correct: list[bool] = []
    accuracy = cfg.sample_accuracy
    if problem.family == "graded":  # per-problem accuracy, whole-sample correctness
        accuracy = graded_accuracy(problem.id, cfg.graded_alpha, cfg.graded_beta)
    if accuracy is None:
        for j in range(progress.steps, len(reference)):
            r = rng_for("step", problem.id, seed, j, h.hexdigest())
            good = r.random() < cfg.step_accuracy
            step = reference[j] if good else corrupt_step(reference[j], r)
            step = vary_step(step, r, cfg.step_variety)
            extend_hash(h, step)
            new_steps.append(step)
            steps_correct.append(good)
        correct = progress.ok and all(steps_correct)
        answer_rng = rng_for("answer", problem.id, seed, h.hexdigest())
    else:
        r = rng_for("sample", problem.id, seed)
        good_sample = r.random() < accuracy
        bad_step = r.randrange(len(reference)) if reference else -1
        for j in range(progress.steps, len(reference)):
            good = good_sample or j != bad_step
            step = reference[j] if good else corrupt_step(reference[j], r)
            if cfg.step_variety > 0:
                step = vary_step(step, rng_for("vary", problem.id, seed, j), cfg.step_variety)
            new_steps.append(step)
            steps_correct.append(good)
        correct = progress.ok and good_sample
        answer_rng = rng_for("answer", problem.id, seed)
    if correct:
        answer = problem.answer
    else:
        wrong = _distractors(problem.id, problem.family, problem.answer, cfg.distractors)
        if problem.family == "graded":  # a few distractors take most of the wrong mass
            weights = [cfg.graded_skew**i for i in range(len(wrong))]
            answer = answer_rng.choices(wrong, weights)[0]
        else:
            answer = wrong[answer_rng.randrange(len(wrong))]
    return _assemble(sep, new_steps, steps_correct, answer, correct)


def _generate_after_thought(
    problem: Problem, seed: int, cfg: SimConfig, prefix: str, state: ThoughtState
) -> Sample:
    """Continue an open thought by one segment and close it, then answer with the accuracy
    the whole thought's length buys (:func:`ttc_sim.thinking.accuracy_at`)."""
    head, tokens, after = "", state.tokens, state.after
    if state.open:
        if not prefix.strip():
            head = THINK_OPEN + "\n"
        lead = "" if not prefix or prefix[-1].isspace() else ", " if prefix[-1].isalpha() else " "
        more = segment(problem, seed, tokens, cfg, lead)
        tokens = count_tokens((state.thought + more).strip())
        head += more + THINK_CLOSE + "\n\n"
        after = ""
    answer_cfg = cfg.model_copy(
        update={"sample_accuracy": accuracy_at(tokens, cfg), "think_always": False}
    )
    sample = generate(problem, seed, answer_cfg, after)
    shift = len(head)
    sample.text = head + sample.text
    sample.bad_spans = [(a + shift, b + shift) for a, b in sample.bad_spans]
    return sample


def _assemble(
    sep: str, steps: list[str], steps_correct: list[bool], answer: str, correct: bool
) -> Sample:
    parts = [sep]
    bad: list[tuple[int, int]] = []
    pos = len(sep)
    for step, good in zip(steps, steps_correct, strict=True):
        if not good:
            bad.append((pos, pos + len(step)))
        parts.append(step)
        parts.append(STEP_DELIMITER)
        pos += len(step) + len(STEP_DELIMITER)
    parts.append(final_step(answer))
    return Sample("".join(parts), answer, correct, steps_correct, steps, bad)


def _generate_game24(
    problem: Problem,
    seed: int,
    cfg: SimConfig,
    progress: Progress,
    sep: str,
    h: hashlib.blake2b,
) -> Sample:
    board = progress.board or game24.start_items(problem.numbers)
    good_sample = True
    if cfg.sample_accuracy is not None:
        good_sample = rng_for("sample", problem.id, seed).random() < cfg.sample_accuracy
    first_skill, later_skill = game24.move_skills(cfg, problem.id)
    steps: list[str] = []
    steps_correct: list[bool] = []
    j = progress.steps
    while len(board) > 1:
        good, bad = game24.split_moves(board)
        if cfg.sample_accuracy is not None:
            r = rng_for("move", problem.id, seed, j)
            want_good = good_sample or j != progress.steps
            pool = good if (want_good and good) or not bad else bad
        else:
            r = rng_for("move", problem.id, seed, j, h.hexdigest())
            if not progress.ok:  # an illegal move in the prefix: the path stays wrong
                pool = bad or good
            elif good and r.random() < (first_skill if j == progress.steps else later_skill):
                pool = good
            elif cfg.game24_mistakes == "dead_end" and bad:
                pool = bad
            else:
                pool = good + bad
        move = r.choice(pool)
        steps.append(move.line)
        steps_correct.append(game24.solvable(move.values))
        extend_hash(h, move.line)
        board = move.items
        j += 1
    answer = game24.final_expression(board)
    correct = progress.ok and bool(board) and board[0][0] == game24.TARGET
    return _assemble(sep, steps, steps_correct, answer, correct)


def token_logprobs(sample: Sample, tokens: list[str], seed: int) -> list[float]:
    """Plausible per-token logprobs for ``tokens`` (a prefix of ``sample.text`` split into
    tokens): close to 0 mostly, low inside wrong steps."""
    r = random.Random(seed)
    out: list[float] = []
    pos = 0
    spans = sample.bad_spans
    for tok in tokens:
        start = pos
        pos += len(tok)
        inside_bad = any(a <= start < b for a, b in spans)
        if inside_bad and any(ch.isdigit() for ch in tok):
            out.append(round(-r.uniform(1.0, 4.0), 4))
        else:
            out.append(round(-r.expovariate(8.0), 4))
    return out
