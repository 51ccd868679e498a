"""Per-job budgets: which one is used up, and how much of a plan still fits (reserved
before dispatch, at the worst case per sample)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from ttc_core.search.strategies import Expand, SamplingParams
from ttc_core.settings import EndpointConfig
from ttc_core.store.models import (
    Job,
    utcnow,
)

log = logging.getLogger(__name__)


def budget_label(name: str) -> str:
    """How a job says which budget ended it: ``max_tokens`` -> ``"budget: tokens"``."""
    return f"budget: {name.removeprefix('max_')}"


def searched_tokens(job: Job) -> int:
    """Completion tokens of the search: paid, plus what the expansion cache served.

    A budget bounds the search, not only the bill: samples the cache served count as if
    generated, so that a job grows the same tree whether its samples come from a server
    or from the cache (its usage says what was paid and what was saved)."""
    return job.completion_tokens + (job.cache_completion_tokens or 0)


def searched_requests(job: Job) -> int:
    return job.requests + (job.cache_requests or 0)


def searched_cost(job: Job) -> float:
    return job.cost + (job.cache_cost or 0.0)


def budget_exhausted(job: Job) -> str | None:
    """Name of the budget this job has used up, if any (cache hits count: see
    :func:`searched_tokens`)."""
    budget = job.budget or {}
    checks = {
        "max_tokens": searched_tokens(job),
        "max_requests": searched_requests(job),
        "max_nodes": job.node_count,
        "max_cost": searched_cost(job),
    }
    for name, used in checks.items():
        limit = budget.get(name)
        if limit is not None and used >= limit:
            return name
    limit_s = budget.get("max_seconds")
    if limit_s is not None and job.started_at is not None:
        started = job.started_at
        if started.tzinfo is None:
            started = started.replace(tzinfo=dt.UTC)
        if (utcnow() - started).total_seconds() >= limit_s:
            return "max_seconds"
    return None


def trim_to_budget(
    job: Job, params: SamplingParams, expansions: list[Expand], endpoint: EndpointConfig | None
) -> tuple[list[Expand], str | None]:
    """Reserve before dispatch: never plan more nodes, requests, worst-case tokens or
    worst-case cost than the budget has left. Returns the expansions that fit and the name
    of the budget that cut them, if one did."""
    budget = job.budget or {}
    per_request = endpoint.max_n_per_request if endpoint and endpoint.supports_n else 1
    room: dict[str, float] = {}  # samples each budget still allows
    if (limit := budget.get("max_nodes")) is not None:
        room["max_nodes"] = limit - job.node_count
    # A sample that thinks first may spend its thinking cap on top of its answer.
    worst_tokens = params.max_tokens + int((job.thinking or {}).get("max_tokens") or 0)
    if (limit := budget.get("max_tokens")) is not None:
        room["max_tokens"] = (limit - searched_tokens(job)) // max(1, worst_tokens)
    if (limit := budget.get("max_cost")) is not None and endpoint is not None:
        prompt_tokens = len(job.prompt or str(job.messages or "")) / 4
        per_sample = (
            worst_tokens * endpoint.price_per_1k_completion
            + prompt_tokens * endpoint.price_per_1k_prompt
        ) / 1000
        if per_sample > 0:
            room["max_cost"] = (limit - searched_cost(job)) // per_sample
    requests_left = None
    if (limit := budget.get("max_requests")) is not None:
        requests_left = limit - searched_requests(job)
    trimmed: list[Expand] = []
    cut_by: str | None = None
    for exp in expansions:
        k = exp.k
        for name, left in room.items():
            if left < k:
                k, cut_by = int(max(0, left)), name
        if requests_left is not None and -(-k // per_request) > requests_left:
            k, cut_by = max(0, requests_left * per_request), "max_requests"
        if k <= 0:
            break
        trimmed.append(dataclasses.replace(exp, k=k))
        for name in room:
            room[name] -= k
        if requests_left is not None:
            requests_left -= -(-k // per_request)
    return trimmed, cut_by
