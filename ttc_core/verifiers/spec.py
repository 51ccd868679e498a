"""The verifier JSON a job carries, as pydantic models (a union discriminated on ``kind``).

::

    {"kind": "math"}                                   # the default
    {"kind": "exact", "pattern": "ANSWER:\\\\s*(\\\\S+)"}   # pattern optional
    {"kind": "regex", "pattern": "ANSWER:\\\\s*(\\\\S+)"}   # pattern required, >= 1 group
    {"kind": "reward_model", "endpoint": "sim-rm"}     # an endpoint with kind=reward

A ``pattern`` must compile and is at most 500 characters; the answer is the first capture
group of the pattern's last match in the output.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from ttc_core.verifiers.regex import MAX_PATTERN_CHARS, compile_answer_pattern

__all__ = [
    "DEFAULT_VERIFIER_SPEC",
    "ExactSpec",
    "MathSpec",
    "RegexSpec",
    "RewardModelSpec",
    "VerifierSpec",
    "VerifierSpecModel",
    "parse_verifier_spec",
]

_PATTERN_DESCRIPTION = (
    "regular expression (Python syntax); the answer is its first capture group in the "
    "output's last match"
)


class _SpecBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def compiled_pattern(self) -> re.Pattern[str] | None:
        pattern: str | None = getattr(self, "pattern", None)
        return re.compile(pattern) if pattern is not None else None


def _check_pattern(value: str | None, *, need_group: bool) -> str | None:
    if value is not None:
        compile_answer_pattern(value, need_group=need_group)
    return value


class ExactSpec(_SpecBase):
    """Normalized string equality with the reference."""

    kind: Literal["exact"] = "exact"
    pattern: str | None = Field(
        default=None, max_length=MAX_PATTERN_CHARS, description=_PATTERN_DESCRIPTION
    )

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return _check_pattern(value, need_group=False)


class RegexSpec(_SpecBase):
    """The answer is a user pattern's first capture group; compared like ``exact``."""

    kind: Literal["regex"] = "regex"
    pattern: str = Field(max_length=MAX_PATTERN_CHARS, description=_PATTERN_DESCRIPTION)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        _check_pattern(value, need_group=True)
        return value


class MathSpec(_SpecBase):
    """Mathematical equivalence with the reference (math-verify)."""

    kind: Literal["math"] = "math"
    pattern: str | None = Field(
        default=None, max_length=MAX_PATTERN_CHARS, description=_PATTERN_DESCRIPTION
    )

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return _check_pattern(value, need_group=False)


class RewardModelSpec(_SpecBase):
    """Score = a reward model's probability that the answer is good."""

    kind: Literal["reward_model"] = "reward_model"
    endpoint: str = Field(
        min_length=1, max_length=128, description="an endpoint with kind=reward in TTC_ENDPOINTS"
    )
    pattern: str | None = Field(
        default=None, max_length=MAX_PATTERN_CHARS, description=_PATTERN_DESCRIPTION
    )

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return _check_pattern(value, need_group=False)


#: Any one verifier spec model.
VerifierSpecModel = ExactSpec | RegexSpec | MathSpec | RewardModelSpec

#: The field type for a job's ``verifier``: the union discriminated on ``kind``.
VerifierSpec = Annotated[VerifierSpecModel, Field(discriminator="kind")]

#: Used when a job names no verifier.
DEFAULT_VERIFIER_SPEC: VerifierSpecModel = MathSpec()

_ADAPTER: TypeAdapter[VerifierSpecModel] = TypeAdapter(VerifierSpec)


def parse_verifier_spec(data: Any) -> VerifierSpecModel:
    """Validate verifier JSON (a dict, a spec model, or ``None`` for the default).

    Raises ``pydantic.ValidationError`` (a ``ValueError``) naming the offending field.
    """
    if data is None:
        return DEFAULT_VERIFIER_SPEC
    if isinstance(data, ExactSpec | RegexSpec | MathSpec | RewardModelSpec):
        return data
    return _ADAPTER.validate_python(data)
