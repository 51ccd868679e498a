"""The job's ``prm`` JSON: validation, submission checks, building scorers."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from ttc_core.inference.client import InferenceClient
from ttc_core.inference.limiter import LocalLimiter
from ttc_core.scoring import (
    SCORER_KINDS,
    JsonPrmScorer,
    LlmJudgeScorer,
    LlmJudgeSpec,
    PrmSpec,
    ScorerSpec,
    StepScorer,
    VllmPrmScorer,
    build_scorer,
    check_scorer_spec,
    parse_scorer_spec,
)
from ttc_core.settings import DEFAULT_ENDPOINTS, EndpointConfig

ADAPTER: TypeAdapter[object] = TypeAdapter(ScorerSpec)

ENDPOINTS: dict[str, EndpointConfig] = {
    "gen": EndpointConfig(base_url="http://gpu:8000/v1", model="llm"),
    "gen2": EndpointConfig(base_url="http://gpu:8001/v1", model="llm2"),
    "prm": EndpointConfig(base_url="http://gpu:8100", model="prm-7b", kind="reward"),
}


class Job(BaseModel):
    prm: ScorerSpec | None = None


def test_defaults() -> None:
    prm = ADAPTER.validate_python({"kind": "prm", "endpoint": "prm"})
    assert prm == PrmSpec(endpoint="prm", protocol="vllm_pooling", aggregation="min")
    judge = ADAPTER.validate_python({"kind": "llm_judge", "endpoint": "gen"})
    assert isinstance(judge, LlmJudgeSpec)
    assert (judge.samples, judge.aggregation, judge.temperature) == (3, "min", 0.7)


def test_round_trip_and_job_field() -> None:
    data = {"kind": "prm", "endpoint": "prm", "protocol": "json", "aggregation": "last"}
    spec = parse_scorer_spec(data)
    assert ADAPTER.validate_json(json.dumps(spec.model_dump())) == spec
    assert parse_scorer_spec(spec) is spec
    job = Job.model_validate({"prm": {"kind": "llm_judge", "endpoint": "gen", "samples": 20}})
    assert isinstance(job.prm, LlmJudgeSpec)
    assert Job().prm is None


@pytest.mark.parametrize(
    ("data", "loc", "message"),
    [
        ({"kind": "prm", "endpoint": "prm", "aggregation": "max"}, "aggregation", "'last'"),
        ({"kind": "llm_judge", "endpoint": "g", "aggregation": "sum"}, "aggregation", "'min'"),
        ({"kind": "prm", "endpoint": "prm", "protocol": "grpc"}, "protocol", "vllm_pooling"),
        ({"kind": "prm"}, "endpoint", "Field required"),
        ({"kind": "prm", "endpoint": ""}, "endpoint", "at least 1"),
        ({"kind": "llm_judge", "endpoint": "g", "samples": 0}, "samples", "greater than or equal"),
        ({"kind": "llm_judge", "endpoint": "g", "samples": 21}, "samples", "less than or equal"),
        ({"kind": "llm_judge", "endpoint": "g", "temperature": 3}, "temperature", "less than"),
        ({"kind": "prm", "endpoint": "prm", "samples": 3}, "samples", "Extra inputs"),
        ({"kind": "orm", "endpoint": "prm"}, "kind", "does not match any of the expected tags"),
    ],
)
def test_invalid_specs_name_the_field(data: dict[str, object], loc: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        Job.model_validate({"prm": data})
    (error,) = info.value.errors()
    assert error["loc"][0] == "prm"
    if loc != "kind":
        assert error["loc"][-1] == loc
    assert f"prm.{data['kind']}.{loc}" in str(info.value) or loc == "kind"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"kind": "prm", "endpoint": "nope"},
            "prm.endpoint: unknown endpoint 'nope'; reward endpoints: prm",
        ),
        (
            {"kind": "prm", "endpoint": "gen"},
            "prm.endpoint: not a reward endpoint: 'gen'; reward endpoints: prm",
        ),
        (
            {"kind": "llm_judge", "endpoint": "nope"},
            "prm.endpoint: unknown endpoint 'nope'; generate endpoints: gen, gen2",
        ),
        (
            {"kind": "llm_judge", "endpoint": "prm"},
            "prm.endpoint: not a generate endpoint: 'prm'; generate endpoints: gen, gen2",
        ),
    ],
)
def test_check_scorer_spec_endpoints(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_scorer_spec(data, ENDPOINTS)
    assert str(info.value) == message


def test_check_scorer_spec_accepts_good_specs() -> None:
    check_scorer_spec({"kind": "prm", "endpoint": "prm"}, ENDPOINTS)
    check_scorer_spec(LlmJudgeSpec(endpoint="gen"), ENDPOINTS)
    check_scorer_spec({"kind": "llm_judge", "endpoint": "sim"}, DEFAULT_ENDPOINTS)
    check_scorer_spec({"kind": "prm", "endpoint": "sim-rm"}, DEFAULT_ENDPOINTS)


def test_check_with_nothing_configured() -> None:
    with pytest.raises(ValueError, match=r"reward endpoints: \(none configured\)"):
        check_scorer_spec({"kind": "prm", "endpoint": "prm"}, {"gen": ENDPOINTS["gen"]})


def test_check_invalid_json_raises_validation_error() -> None:
    with pytest.raises(ValidationError):
        check_scorer_spec({"kind": "prm", "endpoint": "prm", "aggregation": "avg"}, ENDPOINTS)


def test_kinds() -> None:
    assert {"prm", "llm_judge"} == SCORER_KINDS


def test_build_each_kind() -> None:
    asked: list[str] = []

    async def go() -> list[StepScorer]:
        async with httpx.AsyncClient() as http:

            def inference(name: str) -> InferenceClient:
                asked.append(name)
                return InferenceClient(name, ENDPOINTS[name], http, LocalLimiter())

            def build(data: dict[str, object]) -> StepScorer:
                return build_scorer(
                    data, endpoints=ENDPOINTS, http_client=http, inference=inference
                )

            return [
                build({"kind": "prm", "endpoint": "prm"}),
                build({"kind": "prm", "endpoint": "prm", "protocol": "json"}),
                build({"kind": "llm_judge", "endpoint": "gen2", "samples": 7, "temperature": 0}),
            ]

    pooling, json_prm, judge = asyncio.run(go())
    assert isinstance(pooling, VllmPrmScorer)
    assert pooling.url == "http://gpu:8100/pooling"
    assert pooling.name == "prm"
    assert isinstance(json_prm, JsonPrmScorer)
    assert json_prm.url == "http://gpu:8100/v1/prm"
    assert isinstance(judge, LlmJudgeScorer)
    assert (judge.samples, judge.temperature) == (7, 0.0)
    assert asked == ["gen2"]
    for scorer in (pooling, json_prm, judge):
        assert isinstance(scorer, StepScorer)
    assert (pooling.kind, json_prm.kind, judge.kind) == ("prm", "prm", "llm_judge")


def test_build_checks_endpoints_and_clients() -> None:
    with pytest.raises(ValueError, match=r"prm\.endpoint: unknown endpoint"):
        build_scorer(
            {"kind": "prm", "endpoint": "x"}, endpoints=ENDPOINTS, http_client=None, inference=None
        )
    with pytest.raises(ValueError, match="needs an HTTP client"):
        build_scorer(
            {"kind": "prm", "endpoint": "prm"},
            endpoints=ENDPOINTS,
            http_client=None,
            inference=None,
        )
    with pytest.raises(ValueError, match="needs an inference client"):
        build_scorer(
            {"kind": "llm_judge", "endpoint": "gen"},
            endpoints=ENDPOINTS,
            http_client=None,
            inference=None,
        )
