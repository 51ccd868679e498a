"""Verifier specs (the job JSON) and building verifiers from them."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from ttc_core.settings import DEFAULT_ENDPOINTS, EndpointConfig
from ttc_core.verifiers import (
    DEFAULT_VERIFIER_SPEC,
    VERIFIER_KINDS,
    Candidate,
    ExactSpec,
    ExactVerifier,
    MathSpec,
    MathVerifier,
    RegexSpec,
    RegexVerifier,
    RewardModelSpec,
    RewardModelVerifier,
    Verifier,
    VerifierSpec,
    VerifierSpecModel,
    build_verifier,
    check_spec,
    parse_verifier_spec,
)

ADAPTER: TypeAdapter[object] = TypeAdapter(VerifierSpec)

ENDPOINTS: dict[str, EndpointConfig] = {
    "gen": EndpointConfig(base_url="http://gpu:8000/v1", model="llm"),
    "rm": EndpointConfig(base_url="http://gpu:8100", model="rm-7b", kind="reward"),
}


class Job(BaseModel):
    verifier: VerifierSpec = Field(default_factory=lambda: MathSpec())


def test_discriminated_union() -> None:
    assert isinstance(ADAPTER.validate_python({"kind": "exact"}), ExactSpec)
    assert isinstance(ADAPTER.validate_python({"kind": "math"}), MathSpec)
    regex = ADAPTER.validate_python({"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"})
    assert isinstance(regex, RegexSpec)
    rm = ADAPTER.validate_python({"kind": "reward_model", "endpoint": "rm"})
    assert isinstance(rm, RewardModelSpec)
    assert rm.pattern is None


def test_default_is_math() -> None:
    assert Job().verifier == MathSpec()
    assert Job.model_validate({}).verifier.kind == "math"
    assert parse_verifier_spec(None) == DEFAULT_VERIFIER_SPEC == MathSpec()


def test_round_trip_through_json() -> None:
    spec = ADAPTER.validate_python({"kind": "regex", "pattern": r"=\s*(\d+)"})
    assert isinstance(spec, RegexSpec)
    again = ADAPTER.validate_json(json.dumps(spec.model_dump()))
    assert again == spec


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "regex"}, "pattern"),
        ({"kind": "regex", "pattern": r"ANSWER: \S+"}, "capture group"),
        ({"kind": "regex", "pattern": "ANSWER: (\\S+"}, "does not compile"),
        ({"kind": "exact", "pattern": "(["}, "does not compile"),
        ({"kind": "math", "pattern": "(a)" * 200}, "at most 500"),
        ({"kind": "reward_model"}, "endpoint"),
        ({"kind": "reward_model", "endpoint": ""}, "endpoint"),
        ({"kind": "judge"}, "does not match any of the expected tags"),
        ({}, "Unable to extract tag using discriminator 'kind'"),
        ({"kind": "math", "threshold": 1}, "Extra inputs"),
    ],
)
def test_invalid_specs(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ADAPTER.validate_python(data)


def test_exact_pattern_without_group_is_allowed() -> None:
    spec = ADAPTER.validate_python({"kind": "exact", "pattern": r"\d+"})
    assert isinstance(spec, ExactSpec)


def build(
    data: object, reference: str | None = "72", client: httpx.AsyncClient | None = None
) -> Verifier:
    return build_verifier(
        parse_verifier_spec(data), reference=reference, endpoints=ENDPOINTS, http_client=client
    )


def test_build_each_kind() -> None:
    assert isinstance(build({"kind": "exact"}), ExactVerifier)
    assert isinstance(build({"kind": "regex", "pattern": r"A: (\d+)"}), RegexVerifier)
    assert isinstance(build({"kind": "math"}), MathVerifier)
    assert isinstance(build(None), MathVerifier)
    assert {"exact", "regex", "math", "reward_model", "game24", "code"} == VERIFIER_KINDS

    async def go() -> Verifier:
        async with httpx.AsyncClient() as client:
            return build({"kind": "reward_model", "endpoint": "rm"}, client=client)

    rm = asyncio.run(go())
    assert isinstance(rm, RewardModelVerifier)
    assert rm.url == "http://gpu:8100/classify"
    assert rm.reference == "72"


def test_built_verifiers_work() -> None:
    text = "The final answer is $\\boxed{72}$.\nANSWER: 72"
    for data in [
        {"kind": "exact"},
        {"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"},
        {"kind": "math"},
        {"kind": "exact", "pattern": r"ANSWER:\s*(\S+)"},
    ]:
        verifier = build(data)
        (verdict,) = asyncio.run(verifier.verify([Candidate(prompt="p", text=text)]))
        assert verdict.correct is True, data
        assert verdict.score == 1.0
        assert verdict.answer == "72"


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [("nope", "unknown endpoint 'nope'"), ("gen", "not a reward endpoint: 'gen'")],
)
def test_bad_reward_endpoint(endpoint: str, message: str) -> None:
    spec = RewardModelSpec(endpoint=endpoint)
    with pytest.raises(ValueError, match=message) as info:
        check_spec(spec, ENDPOINTS)
    assert "verifier.endpoint" in str(info.value)
    assert "rm" in str(info.value)  # lists the known reward endpoints
    with pytest.raises(ValueError, match=message):
        build(spec, client=None)


def test_reward_model_needs_client() -> None:
    with pytest.raises(ValueError, match="HTTP client"):
        build(RewardModelSpec(endpoint="rm"), client=None)


def test_check_spec_accepts_good_specs() -> None:
    specs: list[VerifierSpecModel] = [MathSpec(), ExactSpec(), RewardModelSpec(endpoint="rm")]
    for spec in specs:
        check_spec(spec, ENDPOINTS)
    check_spec({"kind": "reward_model", "endpoint": "sim-rm"}, DEFAULT_ENDPOINTS)
    check_spec(None, {})


def test_check_spec_with_no_reward_endpoints() -> None:
    with pytest.raises(ValueError, match=r"\(none configured\)"):
        check_spec(RewardModelSpec(endpoint="rm"), {"gen": ENDPOINTS["gen"]})
