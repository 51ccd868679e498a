"""The ``ttc`` object of an OpenAI request (``extra_body={"ttc": {...}}`` in the SDK).

It takes the same fields as a job (``POST /v1/jobs``), so a search is configured the same
way whichever door it comes through, plus what only these routes need: ``keep`` (a
stream's job goes on when its client disconnects).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ttc_core.engine.thinking import ThinkingSpec
from ttc_core.scoring import ScorerSpec
from ttc_core.service.submission import Budget
from ttc_core.store.expansion_cache import CacheMode
from ttc_core.verifiers import MathSpec, VerifierSpec
from ttc_core.webhooks import WebhookSpec


class TTCOptions(BaseModel):
    """How ttc searches for the answer of an OpenAI-style request."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "params": {"n": 16},
                    "verifier": {"kind": "math"},
                    "budget": {"max_tokens": 100000},
                }
            ]
        },
    )

    params: dict[str, Any] = Field(
        default_factory=dict, description="the strategy's parameters, as in a job (e.g. n)"
    )
    verifier: VerifierSpec = Field(default_factory=MathSpec)
    prm: ScorerSpec | None = Field(default=None, description="step scorer for step-level search")
    reference: str | None = Field(default=None, max_length=10_000)
    budget: Budget = Field(default_factory=Budget)
    thinking: ThinkingSpec | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**31)
    cache: CacheMode | None = Field(
        default=None, description="the expansion cache, as in a job (default: use with a seed)"
    )
    webhook: WebhookSpec | None = None
    keep: bool = Field(
        default=False,
        description="keep the job running when a streaming (or waiting) client disconnects",
    )
