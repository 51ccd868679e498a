"""From a verifier spec to a verifier: one builder per ``kind``.

To add a verifier: a spec model in ``spec.py`` and a builder in :data:`_BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ttc_core.settings import EndpointConfig
from ttc_core.verifiers.base import Verifier
from ttc_core.verifiers.code import CodeVerifier
from ttc_core.verifiers.exact import ExactVerifier
from ttc_core.verifiers.game24 import Game24Verifier
from ttc_core.verifiers.math_equiv import MathVerifier
from ttc_core.verifiers.regex import RegexVerifier
from ttc_core.verifiers.reward_model import RewardModelVerifier
from ttc_core.verifiers.spec import (
    CodeSpec,
    ExactSpec,
    Game24Spec,
    MathSpec,
    RegexSpec,
    RewardModelSpec,
    VerifierSpecModel,
    parse_verifier_spec,
)

__all__ = ["VERIFIER_KINDS", "build_verifier", "check_spec"]


@dataclass(frozen=True, slots=True)
class _Context:
    reference: str | None
    endpoints: Mapping[str, EndpointConfig]
    http_client: httpx.AsyncClient | None


def _reward_endpoint(name: str, endpoints: Mapping[str, EndpointConfig]) -> EndpointConfig:
    endpoint = endpoints.get(name)
    if endpoint is None or endpoint.kind != "reward":
        known = sorted(n for n, e in endpoints.items() if e.kind == "reward")
        what = "unknown endpoint" if endpoint is None else "not a reward endpoint:"
        raise ValueError(
            f"verifier.endpoint: {what} {name!r}; reward endpoints: "
            f"{', '.join(known) if known else '(none configured)'}"
        )
    return endpoint


def _build_exact(spec: ExactSpec, ctx: _Context) -> Verifier:
    return ExactVerifier(ctx.reference, spec.compiled_pattern())


def _build_regex(spec: RegexSpec, ctx: _Context) -> Verifier:
    return RegexVerifier(spec.pattern, ctx.reference)


def _build_math(spec: MathSpec, ctx: _Context) -> Verifier:
    return MathVerifier(ctx.reference, spec.compiled_pattern())


def _build_reward_model(spec: RewardModelSpec, ctx: _Context) -> Verifier:
    endpoint = _reward_endpoint(spec.endpoint, ctx.endpoints)
    if ctx.http_client is None:
        raise ValueError(f"verifier.endpoint: {spec.endpoint!r} needs an HTTP client")
    return RewardModelVerifier(
        endpoint,
        ctx.http_client,
        reference=ctx.reference,
        pattern=spec.compiled_pattern(),
        name=spec.endpoint,
    )


def _build_game24(spec: Game24Spec, ctx: _Context) -> Verifier:
    return Game24Verifier(ctx.reference)


def _build_code(spec: CodeSpec, ctx: _Context) -> Verifier:
    return CodeVerifier(spec.tests, timeout_s=spec.timeout_s, memory_mb=spec.memory_mb)


# Builders take their own spec model; the dict is keyed by that model's ``kind``.
_BUILDERS: dict[str, Callable[[Any, _Context], Verifier]] = {
    "exact": _build_exact,
    "regex": _build_regex,
    "math": _build_math,
    "reward_model": _build_reward_model,
    "game24": _build_game24,
    "code": _build_code,
}

#: The verifier kinds this build knows.
VERIFIER_KINDS: frozenset[str] = frozenset(_BUILDERS)


def build_verifier(
    spec: VerifierSpecModel | Mapping[str, Any] | None,
    *,
    reference: str | None,
    endpoints: Mapping[str, EndpointConfig],
    http_client: httpx.AsyncClient | None,
) -> Verifier:
    """The verifier for ``spec`` (a spec model, its JSON as a dict, or ``None`` = math).

    Raises ``ValueError`` for an invalid spec, an unknown reward endpoint or one whose
    ``kind`` is not ``reward`` (the message names the endpoint).
    """
    model = parse_verifier_spec(spec)
    builder = _BUILDERS.get(model.kind)
    if builder is None:  # a spec model without a builder: a programming error
        raise ValueError(f"verifier.kind: no builder for {model.kind!r}")
    return builder(model, _Context(reference, endpoints, http_client))


def check_spec(
    spec: VerifierSpecModel | Mapping[str, Any] | None,
    endpoints: Mapping[str, EndpointConfig],
) -> None:
    """Submission-time check of what the spec's schema cannot know (named endpoints).

    Raises ``ValueError`` whose message starts with the offending field, e.g.
    ``"verifier.endpoint: unknown endpoint 'rm'; reward endpoints: sim-rm"``.
    """
    model = parse_verifier_spec(spec)
    if model.kind not in _BUILDERS:
        raise ValueError(f"verifier.kind: unknown verifier kind {model.kind!r}")
    if isinstance(model, RewardModelSpec):
        _reward_endpoint(model.endpoint, endpoints)
