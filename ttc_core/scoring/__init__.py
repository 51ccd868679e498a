"""Step scorers for step-level tree search: score partial solutions step by step.

``base`` holds the extension point (:class:`StepScorer`, :class:`PartialSolution`,
:class:`StepScores`) and :func:`aggregate`; ``prm`` the process reward models over HTTP;
``judge`` the LLM value judge; ``spec`` the job's ``prm`` JSON; ``registry`` turns a spec
into a scorer.
"""

from ttc_core.scoring.base import (
    AGGREGATIONS,
    Aggregation,
    PartialSolution,
    ScorerError,
    StepScorer,
    StepScores,
    aggregate,
)
from ttc_core.scoring.judge import LlmJudgeScorer
from ttc_core.scoring.prm import STEP_TAG, JsonPrmScorer, VllmPrmScorer
from ttc_core.scoring.registry import SCORER_KINDS, build_scorer, check_scorer_spec
from ttc_core.scoring.spec import (
    LlmJudgeSpec,
    PrmSpec,
    ScorerSpec,
    ScorerSpecModel,
    parse_scorer_spec,
)

__all__ = [
    "AGGREGATIONS",
    "SCORER_KINDS",
    "STEP_TAG",
    "Aggregation",
    "JsonPrmScorer",
    "LlmJudgeScorer",
    "LlmJudgeSpec",
    "PartialSolution",
    "PrmSpec",
    "ScorerError",
    "ScorerSpec",
    "ScorerSpecModel",
    "StepScorer",
    "StepScores",
    "VllmPrmScorer",
    "aggregate",
    "build_scorer",
    "check_scorer_spec",
    "parse_scorer_spec",
]
