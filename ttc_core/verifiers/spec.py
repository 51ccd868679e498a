"""The verifier JSON a job carries, as pydantic models (a union discriminated on ``kind``).

::

    {"kind": "math"}                                   # the default
    {"kind": "exact", "pattern": "ANSWER:\\\\s*(\\\\S+)"}   # pattern optional
    {"kind": "regex", "pattern": "ANSWER:\\\\s*(\\\\S+)"}   # pattern required, >= 1 group
    {"kind": "reward_model", "endpoint": "sim-rm"}     # an endpoint with kind=reward
    {"kind": "game24"}                                 # reference: the numbers, "4 4 6 8"
    {"kind": "code", "tests": "def test_f():\\n    assert f(2) == 4", "timeout_s": 5}

A ``pattern`` must compile and is at most 500 characters; the answer is the first capture
group of the pattern's last match in the output. ``code`` tests must parse as Python and
are at most 100 KB; ``timeout_s`` is at most 60 (default 5), ``memory_mb`` at most 4096
(default 512).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from ttc_core.verifiers.code import MAX_MEMORY_MB, MAX_TESTS_BYTES, MAX_TIMEOUT_S, check_tests
from ttc_core.verifiers.regex import MAX_PATTERN_CHARS, compile_answer_pattern

__all__ = [
    "DEFAULT_VERIFIER_SPEC",
    "CodeSpec",
    "ExactSpec",
    "Game24Spec",
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


class Game24Spec(_SpecBase):
    """Game of 24: the answer expression uses the reference's numbers and equals 24."""

    kind: Literal["game24"] = "game24"
    #: No answer pattern: the expression is the last ``\\boxed{}`` or ``ANSWER:`` line.
    pattern: ClassVar[None] = None


class CodeSpec(_SpecBase):
    """Run the output's program against unit tests in a sandboxed subprocess."""

    kind: Literal["code"] = "code"
    #: No answer pattern: the program is the last fenced Python block.
    pattern: ClassVar[None] = None
    tests: str = Field(
        min_length=1,
        max_length=MAX_TESTS_BYTES,
        description="Python unit tests: def test_*() functions or top-level asserts",
    )
    timeout_s: float = Field(
        default=5.0, gt=0, le=MAX_TIMEOUT_S, description="wall-clock limit per run, seconds"
    )
    memory_mb: int = Field(
        default=512, ge=32, le=MAX_MEMORY_MB, description="address-space limit per run, MB"
    )

    @field_validator("tests")
    @classmethod
    def _tests(cls, value: str) -> str:
        return check_tests(value)


#: Any one verifier spec model.
VerifierSpecModel = ExactSpec | RegexSpec | MathSpec | RewardModelSpec | Game24Spec | CodeSpec

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
    if isinstance(data, ExactSpec | RegexSpec | MathSpec | RewardModelSpec | Game24Spec | CodeSpec):
        return data
    return _ADAPTER.validate_python(data)
