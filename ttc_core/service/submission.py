"""What a user submits, how it is checked, and how it becomes rows.

The JSON stays plain::

    {"strategy": "best_of_n", "endpoint": "local-vllm", "prompt": "...",
     "params": {"n": 16, "temperature": 0.8, "max_tokens": 512},
     "verifier": {"kind": "regex", "pattern": "ANSWER:\\s*(\\S+)"},
     "reference": "42", "budget": {"max_tokens": 200000}}

Every check raises :class:`InputError` naming the offending field, before anything is
written, so a refused submission leaves nothing behind.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.orm import Session

from ttc_core.engine.thinking import ThinkingSpec, check_thinking
from ttc_core.errors import InputError, LimitError, UnknownNameError
from ttc_core.inference.client import render_messages
from ttc_core.observability import metrics
from ttc_core.sandbox.policy import check_code_submission
from ttc_core.scoring import ScorerSpec, check_scorer_spec
from ttc_core.search.strategies import (
    STRATEGIES,
    AutoParams,
    SamplingParams,
    check_policy,
    get_strategy,
)
from ttc_core.search.tree import node_id_for
from ttc_core.settings import Settings
from ttc_core.store.expansion_cache import CacheMode
from ttc_core.store.models import Job, JobStatus, Node, NodeStatus
from ttc_core.store.queries import append_event
from ttc_core.verifiers import MathSpec, VerifierSpec, check_spec
from ttc_core.webhooks import Resolver, WebhookSpec, validate_webhook


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class Budget(BaseModel):
    """Per-job limits; a job that reaches one finishes with its best answer so far."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(default=None, ge=1, description="generated tokens")
    max_requests: int | None = Field(default=None, ge=1)
    max_nodes: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)
    max_cost: float | None = Field(default=None, gt=0)


class JobSpec(BaseModel):
    """A job submission (``POST /v1/jobs``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "strategy": "best_of_n",
                    "endpoint": "sim",
                    "prompt": "Natalia sold clips to 48 of her friends in April, ...",
                    "params": {"n": 16, "temperature": 0.8, "max_tokens": 512},
                    "verifier": {"kind": "regex", "pattern": "ANSWER:\\s*(\\S+)"},
                    "reference": "72",
                    "budget": {"max_tokens": 200000},
                }
            ]
        },
    )

    strategy: str = Field(max_length=64, description="e.g. best_of_n, self_consistency")
    endpoint: str = Field(max_length=128, description="an endpoint named in TTC_ENDPOINTS")
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(default=None, max_length=256)
    params: dict[str, Any] = Field(default_factory=dict)
    verifier: VerifierSpec = Field(default_factory=MathSpec)
    prm: ScorerSpec | None = Field(
        default=None,
        description="step scorer for step-level search: a process reward model or LLM judge",
    )
    reference: str | None = Field(default=None, max_length=10_000)
    budget: Budget = Field(default_factory=Budget)
    seed: int | None = Field(default=None, ge=0, lt=2**31)
    cache: CacheMode | None = Field(
        default=None,
        description="the expansion cache: 'use' (the default with a seed: samples already "
        "generated for the same request and seed are served without a request), 'refresh' "
        "(generate and store), 'off' (the default without a seed)",
    )
    webhook: WebhookSpec | None = Field(
        default=None, description="where to send the job's events (Standard Webhooks)"
    )
    thinking: ThinkingSpec | None = Field(
        default=None,
        description="extended thinking: reasoning controls and budget forcing (any strategy)",
    )

    @model_validator(mode="after")
    def _one_prompt(self) -> JobSpec:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        return self

    def prompt_text(self) -> str:
        if self.prompt is not None:
            return self.prompt
        return render_messages([m.model_dump() for m in self.messages or []])


def _refuse_nul(value: Any, field: str = "") -> None:
    """Postgres text cannot hold a NUL character: name the field that has one (else the
    insert would fail as a server error)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InputError("text must not contain a NUL character (\\u0000)", field=field)
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, field)
            _refuse_nul(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_nul(item, f"{field}.{i}")


def validate_job(
    spec: JobSpec, settings: Settings, *, resolver: Resolver | None = None, admin: bool = False
) -> SamplingParams:
    """Check names, parameters and limits; returns the strategy's parsed parameters.

    ``admin``: whether the submitting key is an admin's (see ``code_tests_admin_only``).
    """
    _refuse_nul(spec.model_dump(mode="json", exclude_none=True))
    if spec.strategy not in STRATEGIES:
        raise UnknownNameError(
            f"unknown strategy {spec.strategy!r}; known: {', '.join(sorted(STRATEGIES))}",
            field="strategy",
        )
    endpoint = settings.endpoints.get(spec.endpoint)
    if endpoint is None or endpoint.kind != "generate":
        known = sorted(n for n, e in settings.endpoints.items() if e.kind == "generate")
        raise UnknownNameError(
            f"unknown endpoint {spec.endpoint!r}; known: {', '.join(known)}", field="endpoint"
        )
    if len(spec.prompt_text()) > settings.max_prompt_chars:
        raise LimitError(
            f"prompt longer than {settings.max_prompt_chars} characters",
            field="messages" if spec.prompt is None else "prompt",
        )
    strategy = get_strategy(spec.strategy)
    try:
        params = strategy.parse_params(spec.params)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InputError(f"params.{loc}: {err['msg']}", field=f"params.{loc}") from None
    params = _fit_to_job(spec, params, settings)
    n = getattr(params, "n", None)
    if n is not None and n > settings.max_n:
        raise LimitError(f"n={n} is over this server's limit of {settings.max_n}", field="params.n")
    depth = getattr(params, "max_depth", None)
    if depth is not None and depth > settings.max_depth:
        raise LimitError(
            f"max_depth={depth} is over this server's limit of {settings.max_depth}",
            field="params.max_depth",
        )
    planned = strategy.planned_samples(params)
    if planned > settings.max_job_nodes:
        raise LimitError(
            f"these parameters plan up to {planned} nodes; this server's limit is "
            f"{settings.max_job_nodes}",
            field="params",
        )
    try:
        check_spec(spec.verifier, settings.endpoints)
    except ValueError as exc:
        raise InputError(str(exc), field="verifier.endpoint") from None
    if spec.verifier.kind == "code":
        check_code_submission(settings, admin=admin)
    if spec.prm is not None:
        try:
            check_scorer_spec(spec.prm, settings.endpoints)
        except ValueError as exc:
            raise InputError(str(exc), field="prm.endpoint") from None
    elif strategy.needs_step_scorer:
        raise InputError(
            f"{spec.strategy} ranks reasoning steps: give a 'prm' step scorer "
            '(e.g. {"kind": "prm", "endpoint": "..."} or {"kind": "llm_judge", ...})',
            field="prm",
        )
    if (
        strategy.needs_scores
        and spec.prm is None
        and spec.verifier.kind != "reward_model"
        and spec.reference is None
    ):
        raise InputError(
            f"{spec.strategy} ranks samples by score: give a 'reference' answer or use a "
            "reward_model verifier",
            field="reference",
        )
    if spec.webhook is not None:
        validate_webhook(spec.webhook, settings, resolver=resolver)
    if spec.thinking is not None:
        check_thinking(spec.thinking, endpoint, settings)
    return params


def create_job(
    session: Session,
    spec: JobSpec,
    settings: Settings,
    *,
    tenant: str,
    resolver: Resolver | None = None,
    admin: bool = False,
    job_id: str | None = None,
) -> Job:
    """Validate, then write the job, its root node and its first event (one transaction
    is the caller's). The caller enqueues the first driver step after commit. ``job_id``:
    a caller that derives ids (an eval's planned jobs) names it; else a fresh uuid4."""
    params = validate_job(spec, settings, resolver=resolver, admin=admin)
    job_id = job_id or str(uuid.uuid4())
    job = Job(
        id=job_id,
        tenant=tenant,
        strategy=spec.strategy,
        endpoint=spec.endpoint,
        prompt=spec.prompt,
        messages=[m.model_dump() for m in spec.messages] if spec.messages else None,
        params=params.model_dump(),
        verifier=spec.verifier.model_dump(),
        prm=spec.prm.model_dump() if spec.prm is not None else None,
        reference=spec.reference,
        budget=spec.budget.model_dump(exclude_none=True),
        seed=spec.seed if spec.seed is not None else secrets.randbelow(2**31),
        cache=job_cache_mode(spec),
        status=JobStatus.queued,
        strategy_state={},
        webhook=spec.webhook.model_dump() if spec.webhook is not None else None,
        thinking=_thinking_of(spec, settings),
    )
    session.add(job)
    session.flush()
    metrics.job_submitted(session, job)
    session.add(
        Node(
            id=node_id_for(job_id, None, 0),
            job_id=job_id,
            parent_id=None,
            depth=0,
            child_index=0,
            role="root",
            text=spec.prompt_text(),
            status=NodeStatus.done,
            meta={},
        )
    )
    append_event(session, job_id, "job_created", strategy=spec.strategy, endpoint=spec.endpoint)
    return job


def job_cache_mode(spec: JobSpec) -> CacheMode:
    """A job with a seed asks for samples another job may have generated: it uses the
    cache unless it says otherwise; one without a seed draws samples nobody else asks for."""
    if spec.cache is not None:
        return spec.cache
    return CacheMode.use if spec.seed is not None else CacheMode.off


def _thinking_of(spec: JobSpec, settings: Settings) -> dict[str, Any] | None:
    """The job's thinking option with its cap resolved (stored with the job, so a later
    settings change leaves it alone); strategies that always think get the defaults."""
    thinking = spec.thinking
    if thinking is None and get_strategy(spec.strategy).thinks:
        thinking = ThinkingSpec()
    if thinking is None:
        return None
    return thinking.model_copy(update={"max_tokens": thinking.cap(settings)}).model_dump()


def _fit_to_job(spec: JobSpec, params: SamplingParams, settings: Settings) -> SamplingParams:
    """Checks of parameters against the rest of the submission. ``stop_on_pass`` needs a
    verifier that passes or fails a sample; ``auto`` takes the server's policy when it
    names none (stored with the job, so a later settings change leaves it alone), and
    every band of it must be able to run this job."""
    if getattr(params, "stop_on_pass", False) and (
        spec.reference is None and spec.verifier.kind != "code"
    ):
        raise InputError(
            "stop_on_pass stops when a sample passes: give a 'reference' or a code verifier "
            "with tests",
            field="params.stop_on_pass",
        )
    adaptive = getattr(params, "adaptive", None)
    if adaptive is not None and adaptive.min_samples > getattr(params, "n", 0):
        raise InputError(
            "adaptive.min_samples cannot exceed n (the most samples drawn)",
            field="params.adaptive.min_samples",
        )
    if not isinstance(params, AutoParams):
        return params
    field = "params.policy"
    if params.policy is None:
        params = params.model_copy(update={"policy": settings.auto_policy})
        field = "auto_policy"
    assert params.policy is not None
    check_policy(params.policy, field=field)
    for i, band in enumerate(params.policy.bands):
        inner = get_strategy(band.strategy)
        where = f"{field}.bands.{i}"
        if inner.needs_step_scorer and spec.prm is None:
            raise InputError(
                f"band {band.name!r} runs {band.strategy}, which ranks reasoning steps: give "
                "a 'prm' step scorer",
                field="prm",
            )
        if (
            inner.needs_scores
            and spec.prm is None
            and spec.verifier.kind != "reward_model"
            and spec.reference is None
        ):
            raise InputError(
                f"band {band.name!r} runs {band.strategy}, which ranks samples by score: give "
                "a 'reference' answer or use a reward_model verifier",
                field="reference",
            )
        n = getattr(inner.parse_params(band.params), "n", None)
        if n is not None and n > settings.max_n:
            raise LimitError(
                f"band {band.name!r}: n={n} is over this server's limit of {settings.max_n}",
                field=f"{where}.params.n",
            )
    return params
