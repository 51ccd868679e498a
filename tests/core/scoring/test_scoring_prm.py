"""Process reward model scorers against a fake HTTP server (``httpx.MockTransport``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from ttc_core.scoring import (
    STEP_TAG,
    JsonPrmScorer,
    PartialSolution,
    ScorerError,
    StepScores,
    VllmPrmScorer,
)
from ttc_core.settings import EndpointConfig

POOLING = EndpointConfig(
    base_url="http://prm.test:8200/v1/",
    model="Qwen/Qwen2.5-Math-PRM-7B",
    kind="reward",
    max_retries=3,
    timeout_s=7.5,
)
JSON_PRM = POOLING.model_copy(update={"base_url": "http://prm.test:8200"})

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class Server:
    """A fake PRM server: records requests and bodies, answers with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(json.loads(request.content))
        answer = self.handler(request)
        if isinstance(answer, httpx.Response):
            return answer
        return await answer


def pooling_ok(request: httpx.Request) -> httpx.Response:
    """p_good of step i = 1 / (i + 2): 0.5, 0.333..., 0.25, ..."""
    content = json.loads(request.content)["messages"][-1]["content"]
    n = content.count(STEP_TAG)
    pairs = [[1 - 1 / (i + 2), 1 / (i + 2)] for i in range(n)]
    return httpx.Response(200, json={"object": "list", "data": [{"index": 0, "data": pairs}]})


def json_ok(request: httpx.Request) -> httpx.Response:
    items = json.loads(request.content)["items"]
    results = [{"step_scores": [len(s) / 100 for s in item["steps"]]} for item in items]
    return httpx.Response(200, json={"results": results})


def run(
    scorer_cls: type[VllmPrmScorer] | type[JsonPrmScorer],
    endpoint: EndpointConfig,
    server: Server,
    items: list[PartialSolution],
    *,
    sleeps: list[float] | None = None,
    **kwargs: Any,
) -> list[StepScores]:
    record = sleeps if sleeps is not None else []

    async def fake_sleep(seconds: float) -> None:
        record.append(seconds)

    async def go() -> list[StepScores]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            scorer = scorer_cls(endpoint, client, sleep=fake_sleep, **kwargs)
            return await scorer.score(items)

    return asyncio.run(go())


def item(*steps: str, question: str = "What is 2 + 3?") -> PartialSolution:
    return PartialSolution(question=question, steps=steps)


# -- vLLM pooling ----------------------------------------------------------------------------


def test_pooling_request_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRM_KEY", "sekrit")
    endpoint = POOLING.model_copy(update={"api_key_env": "PRM_KEY"})
    server = Server(pooling_ok)
    (scores,) = run(VllmPrmScorer, endpoint, server, [item("2 + 3 = 5.", "The answer is 5.")])
    assert scores.step_scores == pytest.approx([1 / 2, 1 / 3])
    assert scores.path_value is None
    (request,) = server.requests
    assert str(request.url) == "http://prm.test:8200/pooling"  # /v1 not doubled, no //
    assert request.method == "POST"
    assert request.headers["authorization"] == "Bearer sekrit"
    assert request.extensions["timeout"]["read"] == 7.5
    assert server.bodies[0] == {
        "model": "Qwen/Qwen2.5-Math-PRM-7B",
        "messages": [
            {
                "role": "system",
                "content": "Please reason step by step, and put your final answer within "
                "\\boxed{}.",
            },
            {"role": "user", "content": "What is 2 + 3?"},
            {"role": "assistant", "content": "2 + 3 = 5.<extra_0>The answer is 5.<extra_0>"},
        ],
    }


def test_pooling_no_key_no_authorization_header() -> None:
    server = Server(pooling_ok)
    run(VllmPrmScorer, POOLING, server, [item("a")])
    assert "authorization" not in server.requests[0].headers


def test_pooling_base_url_without_v1() -> None:
    server = Server(pooling_ok)
    endpoint = POOLING.model_copy(update={"base_url": "http://prm.test:8200"})
    run(VllmPrmScorer, endpoint, server, [item("a")])
    assert str(server.requests[0].url) == "http://prm.test:8200/pooling"


def test_pooling_step_tag_inside_a_step_is_removed() -> None:
    server = Server(pooling_ok)
    (scores,) = run(VllmPrmScorer, POOLING, server, [item("x <extra_0> y", "z")])
    assert len(scores.step_scores) == 2
    assert server.bodies[0]["messages"][-1]["content"] == "x  y<extra_0>z<extra_0>"


def test_pooling_single_float_entries() -> None:
    server = Server(
        lambda r: httpx.Response(200, json={"data": [{"index": 0, "data": [0.25, 1, [0.75]]}]})
    )
    (scores,) = run(VllmPrmScorer, POOLING, server, [item("a", "b", "c")])
    assert scores.step_scores == [0.25, 1.0, 0.75]


def test_pooling_one_request_per_item_in_order_with_duplicates_once() -> None:
    server = Server(pooling_ok)
    items = [item("a"), item("a", "b", "c"), item("a"), item("a", "b")]
    out = run(VllmPrmScorer, POOLING, server, items)
    assert [len(s.step_scores) for s in out] == [1, 3, 1, 2]
    assert out[1].step_scores == pytest.approx([1 / 2, 1 / 3, 1 / 4])
    assert len(server.requests) == 3  # the duplicate is scored once


@pytest.mark.parametrize(("max_concurrency", "expected"), [(64, 30), (16, 16), (3, 3)])
def test_pooling_requests_in_flight_are_bounded(max_concurrency: int, expected: int) -> None:
    in_flight = 0
    peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return pooling_ok(request)

    endpoint = POOLING.model_copy(update={"max_concurrency": max_concurrency})
    items = [item(f"step {i}") for i in range(30)]
    out = run(VllmPrmScorer, endpoint, Server(slow), items)
    assert len(out) == 30
    assert peak == expected


def test_pooling_no_items_no_requests() -> None:
    server = Server(pooling_ok)
    assert run(VllmPrmScorer, POOLING, server, []) == []
    assert server.requests == []


def test_pooling_item_without_steps_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="item 1 has no steps"):
        run(VllmPrmScorer, POOLING, Server(pooling_ok), [item("a"), item()])


def test_generate_endpoint_is_refused() -> None:
    generate = EndpointConfig(base_url="http://gpu:8000/v1", model="llm")

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            VllmPrmScorer(generate, client, name="gen")

    with pytest.raises(ValueError, match="'gen' is a 'generate' endpoint, not a reward endpoint"):
        asyncio.run(go())


def test_pooling_count_mismatch() -> None:
    server = Server(
        lambda r: httpx.Response(200, json={"data": [{"index": 0, "data": [[0.1, 0.9]] * 3}]})
    )
    with pytest.raises(ScorerError, match="PRM returned 3 scores for 4 steps"):
        run(VllmPrmScorer, POOLING, server, [item("a", "b", "c", "d")])
    assert len(server.requests) == 1  # not retried


def raw(body: bytes | str, status: int = 200) -> Handler:
    content = body.encode() if isinstance(body, str) else body
    return lambda r: httpx.Response(status, content=content)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"data": []}', r"malformed response: expected .*got \{\"data\": \[\]\}"),
        ('{"scores": [0.5]}', "malformed response"),
        ("[1, 2]", "malformed response"),
        ('{"data": [{"index": 0, "data": "0.5"}]}', r"'data\[0\].data' is not a list"),
        ('{"data": [{"index": 0, "data": [[0.5]]}, {"index": 1, "data": [[0.5]]}]}', "2 outputs"),
        (
            '{"data": [{"index": 0, "data": [[0.2, 1.7]]}]}',
            r"step 1: score 1.7 is outside \[0, 1\]",
        ),
        ('{"data": [{"index": 0, "data": [[0.2, -0.5]]}]}', "outside"),
        ('{"data": [{"index": 0, "data": [[0.2, NaN]]}]}', "step 1: score is NaN"),
        ('{"data": [{"index": 0, "data": [[0.2, Infinity]]}]}', "outside"),
        ('{"data": [{"index": 0, "data": [[0.2, "high"]]}]}', "is not a number"),
        ('{"data": [{"index": 0, "data": [true]}]}', "is not a number"),
        ('{"data": [{"index": 0, "data": [[]]}]}', "empty score list"),
    ],
)
def test_pooling_garbage_bodies(body: str, message: str) -> None:
    server = Server(raw(body))
    with pytest.raises(ScorerError, match=message) as info:
        run(VllmPrmScorer, POOLING, server, [item("a")])
    assert "PRM endpoint 'Qwen/Qwen2.5-Math-PRM-7B' (http://prm.test:8200/pooling)" in str(
        info.value
    )
    assert len(server.requests) == 1


def test_pooling_non_json_body_is_retried_then_fails() -> None:
    server = Server(raw("<html>502 Bad Gateway</html>"))
    sleeps: list[float] = []
    with pytest.raises(ScorerError, match="not JSON: '<html>502 Bad Gateway</html>'") as info:
        run(VllmPrmScorer, POOLING, server, [item("a")], sleeps=sleeps)
    assert "failed after 4 attempts" in str(info.value)
    assert len(server.requests) == 4
    assert len(sleeps) == 3


def test_pooling_retries_5xx_429_timeouts_and_transport_errors() -> None:
    answers: list[Any] = [
        httpx.Response(503, text="overloaded"),
        httpx.Response(429, headers={"Retry-After": "2"}, text="slow down"),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("connection refused"),
    ]

    def flaky(request: httpx.Request) -> httpx.Response:
        if answers:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return pooling_ok(request)

    server = Server(flaky)
    sleeps: list[float] = []
    endpoint = POOLING.model_copy(update={"max_retries": 5})
    (scores,) = run(VllmPrmScorer, endpoint, server, [item("a", "b")], sleeps=sleeps)
    assert scores.step_scores == pytest.approx([1 / 2, 1 / 3])
    assert len(sleeps) == 4
    assert sleeps[1] == 2.0  # Retry-After honoured
    assert all(s >= 0 for s in sleeps)


def test_pooling_gives_up_after_max_retries() -> None:
    server = Server(raw("down", status=503))
    with pytest.raises(ScorerError, match=r"failed after 4 attempts; last error: HTTP 503: 'down'"):
        run(VllmPrmScorer, POOLING, server, [item("a")])
    assert len(server.requests) == 4


def test_pooling_timeouts_exhausted() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    endpoint = POOLING.model_copy(update={"max_retries": 1})
    with pytest.raises(
        ScorerError, match=r"failed after 2 attempts; last error: timeout after 7.5s"
    ):
        run(VllmPrmScorer, endpoint, Server(hang), [item("a")])


def test_pooling_4xx_is_not_retried() -> None:
    server = Server(raw('{"error": "model not found"}', status=404))
    with pytest.raises(ScorerError, match="refused the request: HTTP 404") as info:
        run(VllmPrmScorer, POOLING, server, [item("a")])
    assert "model not found" in str(info.value)
    assert len(server.requests) == 1


def test_pooling_one_failure_fails_the_batch() -> None:
    def second_bad(request: httpx.Request) -> httpx.Response:
        content = json.loads(request.content)["messages"][-1]["content"]
        if content.startswith("bad"):
            return httpx.Response(200, json={"data": [{"index": 0, "data": [[0.5, 2.0]]}]})
        return pooling_ok(request)

    with pytest.raises(ScorerError, match="outside"):
        run(VllmPrmScorer, POOLING, Server(second_bad), [item("good"), item("bad"), item("ok")])


# -- generic JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize("base_url", ["http://prm.test:8200", "http://prm.test:8200/v1"])
def test_json_request_shape(base_url: str) -> None:
    server = Server(json_ok)
    endpoint = JSON_PRM.model_copy(update={"base_url": base_url})
    out = run(JsonPrmScorer, endpoint, server, [item("ab", "abcd"), item("abc", question="Q2")])
    assert [s.step_scores for s in out] == [[0.02, 0.04], [0.03]]
    (request,) = server.requests
    assert str(request.url) == "http://prm.test:8200/v1/prm"
    assert server.bodies[0] == {
        "model": endpoint.model,
        "items": [
            {"prompt": "What is 2 + 3?", "steps": ["ab", "abcd"]},
            {"prompt": "Q2", "steps": ["abc"]},
        ],
    }


def test_json_batches_of_32() -> None:
    server = Server(json_ok)
    items = [item("x" * (i % 50 + 1), question=f"q{i}") for i in range(70)]
    out = run(JsonPrmScorer, JSON_PRM, server, items)
    assert [len(b["items"]) for b in server.bodies] == [32, 32, 6]
    assert [s.step_scores[0] for s in out] == pytest.approx([(i % 50 + 1) / 100 for i in range(70)])


def test_json_custom_batch_size_and_dedup() -> None:
    server = Server(json_ok)
    items = [item("a"), item("b"), item("a"), item("c")]
    out = run(JsonPrmScorer, JSON_PRM, server, items, batch_size=2)
    assert [len(b["items"]) for b in server.bodies] == [2, 1]
    assert out[0] == out[2]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"scores": []}, "malformed response: expected"),
        ({"results": [{"step_scores": [0.5]}]}, "returned 1 results for 2 items"),
        ({"results": [{"step_scores": [0.5]}, {"scores": [0.5]}]}, r"results\[1\] has no"),
        (
            {"results": [{"step_scores": [0.5]}, {"step_scores": [0.5, 0.5]}]},
            r"results\[1\]: PRM returned 2 scores for 1 steps",
        ),
        ({"results": [{"step_scores": [0.5]}, {"step_scores": [3]}]}, r"results\[1\] step 1"),
    ],
)
def test_json_garbage(payload: dict[str, Any], message: str) -> None:
    server = Server(lambda r: httpx.Response(200, json=payload))
    with pytest.raises(ScorerError, match=message):
        run(JsonPrmScorer, JSON_PRM, server, [item("a"), item("b")])


def test_json_retries_then_succeeds() -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(500, text="boom") if calls == 1 else json_ok(request)

    sleeps: list[float] = []
    out = run(JsonPrmScorer, JSON_PRM, Server(flaky), [item("abcde")], sleeps=sleeps)
    assert out[0].step_scores == [0.05]
    assert len(sleeps) == 1
