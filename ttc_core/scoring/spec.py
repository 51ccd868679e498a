"""The step-scorer JSON a job carries in its ``prm`` field (a union discriminated on ``kind``).

::

    {"kind": "prm", "endpoint": "qwen-prm"}                       # vllm_pooling, min
    {"kind": "prm", "endpoint": "my-prm", "protocol": "json", "aggregation": "last"}
    {"kind": "llm_judge", "endpoint": "sim", "samples": 5, "aggregation": "min"}

``prm`` names an endpoint with ``kind=reward``; ``llm_judge`` a generate endpoint (checked
at submission by :func:`~ttc_core.scoring.registry.check_scorer_spec`). ``aggregation`` is
how a path's step scores become its score (``last``, ``min``, ``prod`` or ``mean``; a
judge's path value is used as is, whatever the aggregation).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from ttc_core.scoring.base import Aggregation

__all__ = [
    "LlmJudgeSpec",
    "PrmSpec",
    "ScorerSpec",
    "ScorerSpecModel",
    "parse_scorer_spec",
]

_AGGREGATION_DESCRIPTION = (
    "how a path's step scores become one score: last, min, prod or mean "
    "(search-and-learn's definitions)"
)


class _SpecBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    aggregation: Aggregation = Field(default="min", description=_AGGREGATION_DESCRIPTION)


class PrmSpec(_SpecBase):
    """A process reward model served over HTTP."""

    kind: Literal["prm"] = "prm"
    endpoint: str = Field(
        min_length=1, max_length=128, description="an endpoint with kind=reward in TTC_ENDPOINTS"
    )
    protocol: Literal["vllm_pooling", "json"] = Field(
        default="vllm_pooling",
        description="vllm_pooling: vLLM /pooling with <extra_0> step tags; json: POST /v1/prm",
    )


class LlmJudgeSpec(_SpecBase):
    """A Tree-of-Thoughts value judge: an LLM answers sure / likely / impossible."""

    kind: Literal["llm_judge"] = "llm_judge"
    endpoint: str = Field(
        min_length=1, max_length=128, description="a generate endpoint in TTC_ENDPOINTS"
    )
    samples: int = Field(default=3, ge=1, le=20, description="judge replies per path, averaged")
    temperature: float = Field(default=0.7, ge=0.0, le=2.0, description="judge temperature")


#: Any one step-scorer spec model.
ScorerSpecModel = PrmSpec | LlmJudgeSpec

#: The field type for a job's ``prm``: the union discriminated on ``kind``.
ScorerSpec = Annotated[ScorerSpecModel, Field(discriminator="kind")]

_ADAPTER: TypeAdapter[ScorerSpecModel] = TypeAdapter(ScorerSpec)


def parse_scorer_spec(data: Any) -> ScorerSpecModel:
    """Validate step-scorer JSON (a dict or a spec model).

    Raises ``pydantic.ValidationError`` (a ``ValueError``) naming the offending field.
    """
    if isinstance(data, PrmSpec | LlmJudgeSpec):
        return data
    return _ADAPTER.validate_python(data)
