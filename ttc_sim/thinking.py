"""Extended thinking in the simulated model: ``<think>…</think>`` before the answer, with an
accuracy that rises with the length of the thought.

When is there thinking?
    When the text after the question (the completions prompt, or a final assistant message
    that is continued) starts with :data:`THINK_OPEN`, the model is inside or after a thought;
    when a chat request asks for it (``chat_template_kwargs: {"enable_thinking": true}``, as
    for Qwen3 on vLLM) or the config says ``think_always``, a fresh sample opens one itself.

What it writes
    A thought is made of *segments*. Each segment is ``L`` tokens of deliberation about the
    problem's steps (``L`` ~ Gamma with mean ``think_mean_tokens`` and coefficient of variation
    ``think_length_cv``; 0 makes every segment exactly the mean), then :data:`THINK_CLOSE`, a
    blank line, and an ordinary solution (steps and ``ANSWER:``). A client that stops at
    ``</think>`` gets exactly the segment's tokens, so usage counts thinking honestly.

Budget forcing (s1)
    A prefix whose thought is still open (e.g. ``<think>`` + a segment + ``Wait``) is
    continued with one more segment; the thinking so far counts. A prefix whose thought is
    closed (``<think>…</think>`` + an answer cue) gets the answer at once.

The curve (the knob)
    The answer after a thought of ``L`` tokens (every token inside the block, forced words
    included) is right with probability::

        p(L) = think_p0 + (think_p_max - think_p0) * (1 - exp(-L / think_tau_tokens))

    drawn with the sample's own uniform draw (``sample_accuracy`` mode of
    :func:`ttc_sim.model.generate` with ``sample_accuracy = p(L)``), so for one seed a longer
    thought only ever turns a wrong answer right. This holds for every family but ``graded``
    (which fixes each problem's accuracy); the synthetic and GSM8K step tasks are what it is
    stated and measured for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import SimConfig
from .rng import rng_for
from .tasks import Problem
from .tokens import count_tokens, split_tokens

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

_OPENERS = (
    "Let me think about what the question asks.",
    "Okay, let me work through this.",
    "First I need to find the quantities involved.",
)
_MOVES = (
    "So {step}",
    "Let me check: {step}",
    "Hmm, {step}",
    "Recomputing, {step}",
    "That means {step}",
)
_ASIDES = (
    "Let me double-check that.",
    "That seems consistent so far.",
    "Is that what the question wants? I think so.",
    "Let me verify the arithmetic once more.",
    "Hmm, let me reconsider whether I missed a detail.",
)


def accuracy_at(tokens: int, cfg: SimConfig) -> float:
    """The probability of a right answer after a thought of ``tokens`` tokens."""
    gain = 1.0 - math.exp(-max(0, tokens) / cfg.think_tau_tokens)
    return cfg.think_p0 + (cfg.think_p_max - cfg.think_p0) * gain


@dataclass(frozen=True, slots=True)
class ThoughtState:
    """Where a prefix stands in a thought."""

    #: The thought has not been closed: the model continues it.
    open: bool
    #: The thinking text so far (between the delimiters).
    thought: str
    #: Text after :data:`THINK_CLOSE` (the answer cue), when closed.
    after: str = ""

    @property
    def tokens(self) -> int:
        """Tokens of the thought so far (the length the curve is read at)."""
        return count_tokens(self.thought.strip())


def read_thought(prefix: str, *, start: bool = False) -> ThoughtState | None:
    """The thought a prefix holds; ``None`` for no thinking. ``start``: a prefix without one
    opens a fresh thought (the request asked for thinking)."""
    text = prefix.lstrip()
    if not text.startswith(THINK_OPEN):
        return ThoughtState(open=True, thought="") if start and not text else None
    body = text[len(THINK_OPEN) :]
    end = body.find(THINK_CLOSE)
    if end < 0:
        return ThoughtState(open=True, thought=body)
    return ThoughtState(open=False, thought=body[:end], after=body[end + len(THINK_CLOSE) :])


def segment_length(problem: Problem, seed: int, so_far: int, cfg: SimConfig) -> int:
    """Tokens of the next segment of a thought that has ``so_far`` tokens."""
    r = rng_for("think-length", problem.id, seed, so_far)
    mean, cv = cfg.think_mean_tokens, cfg.think_length_cv
    if cv <= 0:
        return max(1, round(mean))
    shape = 1.0 / (cv * cv)
    return max(1, round(r.gammavariate(shape, mean / shape)))


def segment(problem: Problem, seed: int, so_far: int, cfg: SimConfig, lead: str = "") -> str:
    """The next segment of a thought: exactly :func:`segment_length` tokens of deliberation
    over the problem's steps, starting with ``lead`` (a space after a forced word)."""
    length = segment_length(problem, seed, so_far, cfg)
    r = rng_for("think-text", problem.id, seed, so_far)
    steps = problem.steps or [problem.question]
    sentences = [r.choice(_OPENERS) if so_far == 0 else "let me look at this again."]
    while count_tokens(lead + " ".join(sentences)) < length:
        if r.random() < 0.6:
            sentences.append(r.choice(_MOVES).format(step=r.choice(steps).strip()))
        else:
            sentences.append(r.choice(_ASIDES))
    tokens = split_tokens(lead + " ".join(sentences))
    return "".join(tokens[:length])
