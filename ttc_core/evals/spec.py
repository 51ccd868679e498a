"""An evaluation submission (``POST /v1/evals``), as pydantic models with no I/O.

::

    {"dataset": "<dataset id>", "endpoint": "sim",
     "arms": [{"strategy": "best_of_n", "params": {"temperature": 0.8}},
              {"strategy": "self_consistency"},
              {"strategy": "beam_search", "params": {"beam_width": 4},
               "prm": {"kind": "prm", "endpoint": "sim-prm"}, "grid": {"n": [4, 16, 64]}}],
     "grid": {"n": [1, 2, 4, 8, 16, 32, 64]}, "seeds": 1,
     "budget": {"max_tokens": 5000000}}

``grid`` names one knob and its values: ``n`` (or another parameter of the arms'
strategies, e.g. ``simulations``) or ``budget.max_tokens`` (each job's token budget). An
arm's own ``grid`` replaces the eval's for that arm. ``seeds``: independent runs of each
point (their per-problem results are averaged). ``budget``: the whole eval's spend; when
it is reached no more jobs start, the live ones are cancelled, and the eval ends with
``ended_by: "budget"`` over the problems that finished.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ttc_core.scoring import ScorerSpec
from ttc_core.service.submission import Budget
from ttc_core.store.expansion_cache import CacheMode
from ttc_core.verifiers import VerifierSpec

#: Strategies whose k-sample accuracy follows from one run of the largest n
#: (``ttc_core.evals.estimators``); every other strategy runs one job per grid point.
SUBSAMPLED_STRATEGIES = ("best_of_n", "self_consistency")
#: Parameters that make a sampling strategy stop early (its n is then a cap, not a count).
_ADAPTIVE_PARAMS = ("adaptive", "stop_on_pass")
#: The grid key that sets each job's token budget.
BUDGET_KEY = "budget.max_tokens"
MAX_GRID_POINTS = 32


class Grid(BaseModel):
    """One knob and its values, e.g. ``{"n": [1, 2, 4]}``."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _one_knob(self) -> Grid:
        extra = self.model_extra or {}
        if len(extra) != 1:
            raise ValueError('a grid names exactly one knob, e.g. {"n": [1, 2, 4, 8]}')
        key, values = next(iter(extra.items()))
        if not isinstance(values, list) or not values:
            raise ValueError(f"{key}: a non-empty list of values")
        if len(values) > MAX_GRID_POINTS:
            raise ValueError(f"{key}: at most {MAX_GRID_POINTS} values")
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise ValueError(f"{key}: positive integers")
        if len(set(values)) != len(values):
            raise ValueError(f"{key}: each value once")
        return self

    @property
    def key(self) -> str:
        return next(iter(self.model_extra or {}))

    @property
    def values(self) -> list[int]:
        return sorted(next(iter((self.model_extra or {}).values())))


class ArmSpec(BaseModel):
    """One strategy configuration swept over the grid."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    prm: ScorerSpec | None = None
    verifier: VerifierSpec | None = Field(
        default=None, description="default: each row's own verifier, else math"
    )
    budget: Budget = Field(default_factory=Budget, description="each job's own limits")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    grid: Grid | None = None


class EvalBudget(BaseModel):
    """The whole eval's spend."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(default=None, ge=1, description="generated tokens, all jobs")
    max_cost: float | None = Field(default=None, gt=0)


class EvalSpec(BaseModel):
    """An evaluation submission (``POST /v1/evals``)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=36, description="a dataset id")
    endpoint: str = Field(max_length=128)
    arms: list[ArmSpec] = Field(min_length=1, max_length=16)
    grid: Grid | None = None
    seeds: int = Field(default=1, ge=1, le=64)
    seed: int | None = Field(default=None, ge=0, lt=2**31)
    budget: EvalBudget = Field(default_factory=EvalBudget)
    name: str = Field(default="", max_length=200)
    cache: CacheMode | None = Field(
        default=None,
        description="the expansion cache for every job of the eval, as a job's 'cache' "
        "('use' by default: a rerun of the same seeds is served what was generated; "
        "'refresh' or 'off' to generate again, e.g. to time a server)",
    )

    @field_validator("arms")
    @classmethod
    def _names(cls, arms: list[ArmSpec]) -> list[ArmSpec]:
        seen: dict[str, int] = {}
        out = []
        for arm in arms:
            base = arm.name or _default_name(arm)
            seen[base] = seen.get(base, 0) + 1
            name = base if seen[base] == 1 else f"{base} #{seen[base]}"
            out.append(arm.model_copy(update={"name": name}))
        return out

    @model_validator(mode="after")
    def _gridded(self) -> EvalSpec:
        for i, arm in enumerate(self.arms):
            if arm.grid is None and self.grid is None:
                raise ValueError(f"arms.{i}.grid: give a grid for the eval or for each arm")
        return self

    def grid_of(self, arm: ArmSpec) -> Grid:
        grid = arm.grid or self.grid
        assert grid is not None  # checked by _gridded
        return grid


def _default_name(arm: ArmSpec) -> str:
    flags = [key for key in ("weighted",) if arm.params.get(key)]
    return arm.strategy + "".join(f" ({flag})" for flag in flags)


def is_subsampled(arm: ArmSpec, grid: Grid) -> bool:
    """Whether one job at the grid's largest ``n`` gives every point of this arm."""
    return (
        arm.strategy in SUBSAMPLED_STRATEGIES
        and grid.key == "n"
        and not any(arm.params.get(key) for key in _ADAPTIVE_PARAMS)
    )
