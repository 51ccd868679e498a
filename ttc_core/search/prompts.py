"""Prompt templates that ttc sends for step-level search, value judgements and
refinement. Models see them verbatim; ``ttc_sim`` recognises them by their marker lines.

Every template has one ``MARKER`` line that never changes, so a simulated (or logged)
request can be classified without guessing.
"""

from __future__ import annotations

STEP_DELIMITER = "\n\n"

#: ToT-style value prompt: the judge answers one word, sampled k times.
VALUE_MARKER = "Reply with one word: sure, likely or impossible."
VALUE_TEMPLATE = (
    "Evaluate whether the partial solution below can still reach a correct final answer.\n"
    + VALUE_MARKER
    + "\n\nProblem:\n{question}\n\nPartial solution:\n{steps}\n\nJudgement:"
)
#: Tree-of-thoughts' mapping of value words to numbers (normalised to [0, 1] by /20).
VALUE_WORDS = {"sure": 20.0, "likely": 1.0, "impossible": 0.001}

#: Self-Refine critique prompt; the verifier's feedback is added when there is some.
CRITIQUE_MARKER = 'Point out the first incorrect step, or reply "No errors." if it is correct.'
CRITIQUE_TEMPLATE = (
    "Review the solution below step by step. "
    + CRITIQUE_MARKER
    + "{feedback}\n\nProblem:\n{question}\n\nSolution:\n{solution}\n\nCritique:"
)
FEEDBACK_LINE = "\nAn automatic check of this solution reported: {feedback}"

#: Self-Refine revision prompt.
REVISE_MARKER = "Write an improved solution step by step, using the critique."
REVISE_TEMPLATE = (
    "Problem:\n{question}\n\nPrevious attempt:\n{solution}\n\nCritique:\n{critique}\n\n"
    + REVISE_MARKER
    + " End with a line 'ANSWER: <answer>'."
)


def value_prompt(question: str, steps: list[str]) -> str:
    return VALUE_TEMPLATE.format(question=question, steps=STEP_DELIMITER.join(steps) or "(none)")


def critique_prompt(question: str, solution: str, feedback: str | None = None) -> str:
    extra = FEEDBACK_LINE.format(feedback=feedback) if feedback else ""
    return CRITIQUE_TEMPLATE.format(question=question, solution=solution, feedback=extra)


def revise_prompt(question: str, solution: str, critique: str) -> str:
    return REVISE_TEMPLATE.format(question=question, solution=solution, critique=critique)


def parse_value_word(text: str) -> float | None:
    """The value of a judge's reply (the last value word in it), or None."""
    lowered = text.lower()
    best: tuple[int, float] | None = None
    for word, value in VALUE_WORDS.items():
        pos = lowered.rfind(word)
        if pos >= 0 and (best is None or pos > best[0]):
            best = (pos, value)
    return None if best is None else best[1] / VALUE_WORDS["sure"]
