"""The simulated process reward model (PRM): one score per reasoning step.

The score of step ``i`` is ``p_good = sigmoid(base + noise)``: ``base`` is +2.2 when steps
``1..i`` are all right (a step after a wrong one is wrong too), -2.2 when any of them is wrong,
and 0 for a text that is no recognisable step on a path that is right so far; ``noise`` is
Gaussian with standard deviation ``prm_noise * 10``, drawn from a stable hash of (problem, steps
``1..i``), so a path prefix always gets the same score whatever request carries it. Game of 24
steps are moves: right when legal and 24 stays reachable. A final-answer step is right when the
path is right and the answer correct.

Two request shapes reach it (see :mod:`ttc_sim.server`): vLLM's pooling API for step-tag PRMs
(Qwen2.5-Math-PRM style, steps each followed by ``<extra_0>``, one ``[p_bad, p_good]`` pair per
tag) and a plain JSON API (``{"prompt", "steps"}`` -> ``{"step_scores"}``).
"""

from __future__ import annotations

import math
import re

from .config import SimConfig
from .rng import rng_for
from .steps import BAD, GOOD, extend_hash, judge_chunks, path_hash, split_chunks
from .tasks import Problem, ProblemIndex

#: The step tag of Qwen2.5-Math-PRM (vLLM's default ``step_tag_id`` for it).
STEP_TAG = "<extra_0>"
#: The logit of a step that is right (+) or wrong (-) before noise.
PRM_LOGIT = 2.2

_EPS = 1e-6
_SPECIAL = re.compile(r"<[|\uff5c][^<>\n]{0,60}?[|\uff5c]>")
_ROLE = re.compile(r"^(?:assistant|Assistant)\s*:?[ \t]*\n?")


def _sigmoid(x: float) -> float:
    p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))
    return min(1.0 - _EPS, max(_EPS, p))


def step_verdicts(problem: Problem, steps: list[str]) -> list[int]:
    """One verdict per step (``GOOD``/``BAD``/``UNKNOWN``); a step holding several
    blank-line separated chunks is bad if any chunk is, else good if any is."""
    if all("\n\n" not in s for s in steps):
        return judge_chunks(problem, [s.strip() for s in steps])
    chunks: list[str] = []
    owner: list[int] = []
    for i, s in enumerate(steps):
        parts = split_chunks(s) or [""]
        chunks.extend(parts)
        owner.extend([i] * len(parts))
    verdicts = judge_chunks(problem, chunks)
    out = [0] * len(steps)
    seen_bad = [False] * len(steps)
    for i, v in zip(owner, verdicts, strict=True):
        if v == BAD:
            seen_bad[i] = True
        elif v == GOOD:
            out[i] = GOOD
    return [BAD if bad else v for v, bad in zip(out, seen_bad, strict=True)]


def step_scores(problem: Problem, steps: list[str], cfg: SimConfig) -> list[float]:
    """``p_good`` for each step of a path (see the module docstring)."""
    verdicts = step_verdicts(problem, steps)
    h = path_hash()
    sd = cfg.prm_noise * 10.0
    out: list[float] = []
    for step, verdict in zip(steps, verdicts, strict=True):
        extend_hash(h, step)
        logit = PRM_LOGIT * verdict
        if sd > 0:
            logit += rng_for("prm", problem.id, h.hexdigest()).gauss(0.0, sd)
        out.append(_sigmoid(logit))
    return out


def strip_template(text: str) -> str:
    """``text`` without chat-template special tokens (``<|im_end|>`` ...) and a leading
    ``assistant`` role line."""
    text = _SPECIAL.sub("\n", text).lstrip()
    return _ROLE.sub("", text, count=1)


def tagged_steps(response: str) -> list[str]:
    """The steps of a response whose steps each end with :data:`STEP_TAG` (the text after the
    last tag is not a step)."""
    parts = response.split(STEP_TAG)[:-1]
    if parts:
        parts[0] = strip_template(parts[0])
    return [p.strip() for p in parts]


_STARTS = ("<|im_start|>assistant", "<|end_header_id|>", "\n\n")


def parse_pooling_text(text: str, index: ProblemIndex) -> tuple[Problem, list[str]]:
    """(problem, steps) of a templated PRM input: the question, then the steps each followed by
    :data:`STEP_TAG`."""
    problem, end = index.locate(text)
    if end == 0:  # the question is not there verbatim: guess where the response starts
        head = text.split(STEP_TAG, 1)[0]
        end = max((head.rfind(m) + len(m) for m in _STARTS if m in head), default=0)
    return problem, tagged_steps(text[end:])
