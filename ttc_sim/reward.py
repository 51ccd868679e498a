"""The simulated reward model (outcome and process rewards alike).

The score of a response is ``sigmoid(base + noise)``: ``base`` is +2 for a right final answer
and -2 for a wrong one; a response without a final answer (a partial solution, as a process
reward model sees it) gets +2 if all the steps it holds are right, -2 if any is wrong, and 0 if
it holds no recognisable step. ``noise`` is Gaussian with standard deviation
``reward_noise * 10``, drawn from a stable hash of (problem, response), so a text always gets
the same score.
"""

from __future__ import annotations

import math

from .answers import extract_answer
from .config import SimConfig
from .rng import rng_for
from .steps import is_correct, read_progress
from .tasks import Problem, ProblemIndex, default_index

_EPS = 1e-6


def judge(problem: Problem, response: str) -> float:
    """The noiseless logit: +2 right, -2 wrong, 0 nothing to judge."""
    answer = extract_answer(response)
    if answer is not None:
        return 2.0 if is_correct(problem, answer) else -2.0
    progress = read_progress(problem, response)
    if progress.steps == 0:
        return 0.0
    return 2.0 if progress.ok else -2.0


def reward_score(problem: Problem, response: str, cfg: SimConfig) -> float:
    """The reward of ``response`` to ``problem``, a probability in (0, 1)."""
    logit = judge(problem, response)
    if cfg.reward_noise > 0:
        logit += rng_for("reward", problem.id, response).gauss(0.0, cfg.reward_noise * 10.0)
    p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))
    return min(1.0 - _EPS, max(_EPS, p))


def score_text(text: str, cfg: SimConfig, index: ProblemIndex | None = None) -> float:
    """Reward of a prompt followed by its response in one text (vLLM's ``/classify`` input)."""
    problem, end = (index or default_index()).locate(text)
    return reward_score(problem, text[end:], cfg)


def score_responses(
    prompt: str, responses: list[str], cfg: SimConfig, index: ProblemIndex | None = None
) -> list[float]:
    """Rewards of several responses to one prompt."""
    problem = (index or default_index()).find(prompt)
    return [reward_score(problem, r, cfg) for r in responses]
