"""Difficulty-aware allocation: the policy of ``strategy: auto`` and its probe.

A cheap probe (``probe`` samples of the whole answer) estimates how hard a problem is;
an ordered list of difficulty bands maps that estimate to the strategy, parameters and
token budget that run next on the same tree (Snell et al., 2024: compute-optimal scaling
spends little on easy problems and searches on hard ones). The default policy lives in
settings (``TTC_AUTO_POLICY``); a job may carry its own in ``params.policy``. Either is
checked (strategies exist, parameters parse) at start-up and at submission.

Difficulty is ``1 - signal`` where the signal is the probe's ``agreement`` (the leading
answer's share of the votes, self-consistency's own confidence) or its mean verifier /
PRM ``score``. Example policy::

    {"signal": "agreement", "probe": 4, "bands": [
        {"name": "easy", "up_to": 0.25, "strategy": "self_consistency", "params": {"n": 4}},
        {"name": "medium", "up_to": 0.5, "strategy": "self_consistency",
         "params": {"n": 16, "adaptive": {"confidence": 0.95}}},
        {"name": "hard", "up_to": 1.0, "strategy": "beam_search",
         "params": {"n": 8, "beam_width": 2}, "max_tokens": 8000}]}

"probe agreement 0.25 -> difficulty 0.75 -> hard -> beam_search, 8000 tokens".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ttc_core.search.tree import NodeView


class Band(BaseModel):
    """Problems with difficulty <= ``up_to`` (and above the previous band) run this."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    up_to: float = Field(ge=0.0, le=1.0, description="upper bound of the band's difficulty")
    strategy: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    max_tokens: int | None = Field(
        default=None, ge=1, description="generated tokens for the whole job, probe included"
    )


class AutoPolicy(BaseModel):
    """Ordered difficulty bands; the last one must reach difficulty 1."""

    model_config = ConfigDict(extra="forbid")

    signal: Literal["agreement", "score"] = "agreement"
    probe: int = Field(default=4, ge=1, le=64, description="samples of the probe")
    bands: list[Band] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _ordered(self) -> AutoPolicy:
        bounds = [b.up_to for b in self.bands]
        if bounds != sorted(bounds):
            raise ValueError("bands must be ordered by up_to")
        if bounds[-1] < 1.0:
            raise ValueError("the last band must have up_to = 1.0")
        return self

    def band_for(self, difficulty: float) -> Band:
        return next(b for b in self.bands if difficulty <= b.up_to)


DEFAULT_POLICY = AutoPolicy(
    signal="agreement",
    probe=4,
    bands=[
        Band(name="easy", up_to=0.25, strategy="self_consistency", params={"n": 4}),
        Band(
            name="medium",
            up_to=0.5,
            strategy="self_consistency",
            params={"n": 16, "adaptive": {"confidence": 0.95, "min_samples": 4, "batch": 4}},
        ),
        Band(
            name="hard",
            up_to=1.0,
            strategy="self_consistency",
            params={"n": 40, "adaptive": {"confidence": 0.95, "min_samples": 4, "batch": 8}},
        ),
    ],
)


@dataclass(frozen=True)
class Probe:
    """What the probe samples say about a problem."""

    samples: int
    agreement: float
    mean_score: float | None
    difficulty: float
    votes: dict[str, int]


def measure(samples: Sequence[NodeView], signal: str) -> Probe:
    """Difficulty of a problem from its probe samples (failed samples count as disagreement:
    a sample with no answer votes for nothing)."""
    votes = Counter(n.answer for n in samples if n.answer is not None)
    top = max(votes.values(), default=0)
    agreement = top / len(samples) if samples else 0.0
    scores = [n.score for n in samples if n.score is not None]
    mean_score = sum(scores) / len(scores) if scores else None
    if signal == "score" and mean_score is not None:
        difficulty = 1.0 - max(0.0, min(1.0, mean_score))
    else:
        difficulty = 1.0 - agreement
    return Probe(len(samples), agreement, mean_score, round(difficulty, 6), dict(votes))


def explain(policy: AutoPolicy, probe: Probe, band: Band) -> str:
    """One line a person reads in the job's events."""
    value = probe.agreement if policy.signal == "agreement" else probe.mean_score
    shown = "n/a" if value is None else f"{value:.2f}"
    budget = f", {band.max_tokens} tokens" if band.max_tokens else ""
    return (
        f"probe {policy.signal} {shown} over {probe.samples} samples -> difficulty "
        f"{probe.difficulty:.2f} -> {band.name} -> {band.strategy}{budget}"
    )
