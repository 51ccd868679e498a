"""From a step-scorer spec to a step scorer: one builder per ``kind``.

To add a scorer: a spec model in ``spec.py`` (a new ``kind`` in the union), a builder in
:data:`_BUILDERS` and its endpoint check in :data:`_ENDPOINT_KIND`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ttc_core.inference.client import InferenceClient
from ttc_core.scoring.base import StepScorer
from ttc_core.scoring.judge import LlmJudgeScorer
from ttc_core.scoring.prm import JsonPrmScorer, VllmPrmScorer
from ttc_core.scoring.spec import LlmJudgeSpec, PrmSpec, ScorerSpecModel, parse_scorer_spec
from ttc_core.settings import EndpointConfig

__all__ = ["SCORER_KINDS", "build_scorer", "check_scorer_spec"]

#: The job field the spec comes from; error messages start with ``prm.<field>``.
FIELD = "prm"

#: The endpoint ``kind`` each scorer kind needs.
_ENDPOINT_KIND: dict[str, str] = {"prm": "reward", "llm_judge": "generate"}


@dataclass(frozen=True, slots=True)
class _Context:
    endpoints: Mapping[str, EndpointConfig]
    http_client: httpx.AsyncClient | None
    inference: Callable[[str], InferenceClient] | None
    seed: int | None = None


def _endpoint(spec: ScorerSpecModel, endpoints: Mapping[str, EndpointConfig]) -> EndpointConfig:
    """The spec's endpoint, checked to exist and to be of the kind the scorer needs."""
    wanted = _ENDPOINT_KIND[spec.kind]
    endpoint = endpoints.get(spec.endpoint)
    if endpoint is None or endpoint.kind != wanted:
        known = sorted(n for n, e in endpoints.items() if e.kind == wanted)
        what = "unknown endpoint" if endpoint is None else f"not a {wanted} endpoint:"
        raise ValueError(
            f"{FIELD}.endpoint: {what} {spec.endpoint!r}; {wanted} endpoints: "
            f"{', '.join(known) if known else '(none configured)'}"
        )
    return endpoint


def _build_prm(spec: PrmSpec, ctx: _Context) -> StepScorer:
    endpoint = _endpoint(spec, ctx.endpoints)
    if ctx.http_client is None:
        raise ValueError(f"{FIELD}.endpoint: {spec.endpoint!r} needs an HTTP client")
    if spec.protocol == "json":
        return JsonPrmScorer(endpoint, ctx.http_client, name=spec.endpoint)
    return VllmPrmScorer(endpoint, ctx.http_client, name=spec.endpoint)


def _build_llm_judge(spec: LlmJudgeSpec, ctx: _Context) -> StepScorer:
    _endpoint(spec, ctx.endpoints)
    if ctx.inference is None:
        raise ValueError(f"{FIELD}.endpoint: {spec.endpoint!r} needs an inference client")
    return LlmJudgeScorer(
        ctx.inference(spec.endpoint),
        samples=spec.samples,
        temperature=spec.temperature,
        seed=ctx.seed,
    )


# Builders take their own spec model; the dict is keyed by that model's ``kind``.
_BUILDERS: dict[str, Callable[[Any, _Context], StepScorer]] = {
    "prm": _build_prm,
    "llm_judge": _build_llm_judge,
}

#: The step-scorer kinds this build knows.
SCORER_KINDS: frozenset[str] = frozenset(_BUILDERS)


def build_scorer(
    spec: ScorerSpecModel | Mapping[str, Any],
    *,
    endpoints: Mapping[str, EndpointConfig],
    http_client: httpx.AsyncClient | None,
    inference: Callable[[str], InferenceClient] | None,
    seed: int | None = None,
) -> StepScorer:
    """The step scorer for ``spec`` (a spec model or its JSON as a dict).

    ``inference`` maps an endpoint name to its client (the engine's ``ctx.inference``).
    Raises ``ValueError`` for an invalid spec or a wrong endpoint (the message names the
    field, e.g. ``"prm.endpoint: unknown endpoint 'x'; reward endpoints: sim-rm"``).
    """
    model = parse_scorer_spec(spec)
    builder = _BUILDERS.get(model.kind)
    if builder is None:  # a spec model without a builder: a programming error
        raise ValueError(f"{FIELD}.kind: no builder for {model.kind!r}")
    return builder(model, _Context(endpoints, http_client, inference, seed))


def check_scorer_spec(
    spec: ScorerSpecModel | Mapping[str, Any],
    endpoints: Mapping[str, EndpointConfig],
) -> None:
    """Submission-time check of what the schema cannot know (the named endpoint).

    Raises ``ValueError`` whose message starts with the offending field, e.g.
    ``"prm.endpoint: unknown endpoint 'x'; reward endpoints: sim-rm"`` or
    ``"prm.endpoint: not a generate endpoint: 'sim-rm'; generate endpoints: sim"``.
    """
    model = parse_scorer_spec(spec)
    if model.kind not in _BUILDERS:
        raise ValueError(f"{FIELD}.kind: unknown step scorer kind {model.kind!r}")
    _endpoint(model, endpoints)
