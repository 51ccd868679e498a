"""Reward model verifier over HTTP-shaped interactions (``httpx.MockTransport``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from ttc_core.settings import EndpointConfig
from ttc_core.verifiers import Candidate, RewardModelVerifier, Verdict, VerifierError

Handler = Callable[[httpx.Request], httpx.Response]

# A fake server of /classify's text form (``server`` named: no probe requests).
CLASSIFY = EndpointConfig(
    base_url="http://rm.test:8100",
    model="rm-7b",
    kind="reward",
    max_retries=3,
    timeout_s=7.5,
    server="generic",
)
JSON_RM = CLASSIFY.model_copy(update={"reward_protocol": "json"})


class Recorder:
    """A fake reward server: records requests, answers with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(json.loads(request.content))
        return self.handler(request)


def classify_ok(request: httpx.Request) -> httpx.Response:
    """Scores each input by its length, reversed ``index`` order to test re-ordering."""
    inputs = json.loads(request.content)["input"]
    data = [
        {"index": i, "label": "good", "probs": [1 - len(s) / 1000, len(s) / 1000], "num_classes": 2}
        for i, s in enumerate(inputs)
    ]
    return httpx.Response(200, json={"id": "classify-1", "object": "list", "data": data[::-1]})


def json_ok(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    return httpx.Response(200, json={"scores": [len(r) / 100 for r in body["responses"]]})


def verify(
    endpoint: EndpointConfig,
    server: Recorder,
    candidates: list[Candidate],
    *,
    sleeps: list[float] | None = None,
    **kwargs: Any,
) -> list[Verdict]:
    record = sleeps if sleeps is not None else []

    async def fake_sleep(seconds: float) -> None:
        record.append(seconds)

    async def go() -> list[Verdict]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            verifier = RewardModelVerifier(endpoint, client, sleep=fake_sleep, **kwargs)
            return await verifier.verify(candidates)

    return asyncio.run(go())


def cands(*texts: str, prompt: str = "Q?") -> list[Candidate]:
    return [Candidate(prompt=prompt, text=t) for t in texts]


def test_classify_request_shape_and_scores() -> None:
    server = Recorder(classify_ok)
    texts = ["a" * 100, "b" * 300, "c" * 50]
    verdicts = verify(CLASSIFY, server, cands(*texts))
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "http://rm.test:8100/classify"
    assert server.bodies[0] == {"model": "rm-7b", "input": [f"Q?\n\n{t}" for t in texts]}
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.extensions["timeout"]["read"] == 7.5
    expected = [(4 + len(t)) / 1000 for t in texts]
    assert [v.score for v in verdicts] == pytest.approx(expected)
    assert all(v.correct is None for v in verdicts)


def test_classify_single_label_probs() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = len(json.loads(request.content)["input"])
        return httpx.Response(200, json={"data": [{"index": i, "probs": [0.25]} for i in range(n)]})

    verdicts = verify(CLASSIFY, Recorder(handler), cands("x", "y"))
    assert [v.score for v in verdicts] == [0.25, 0.25]


def test_classify_batches() -> None:
    server = Recorder(classify_ok)
    texts = [str(i) * (i + 1) for i in range(7)]
    verdicts = verify(CLASSIFY, server, cands(*texts), batch_size=3)
    assert [len(b["input"]) for b in server.bodies] == [3, 3, 1]
    assert [v.score for v in verdicts] == pytest.approx([(4 + len(t)) / 1000 for t in texts])


def test_json_protocol_groups_by_prompt() -> None:
    server = Recorder(json_ok)
    candidates = [
        Candidate(prompt="P1", text="a"),
        Candidate(prompt="P2", text="bb"),
        Candidate(prompt="P1", text="ccc"),
    ]
    verdicts = verify(JSON_RM, server, candidates)
    assert {str(r.url) for r in server.requests} == {"http://rm.test:8100/v1/reward"}
    assert sorted(server.bodies, key=lambda b: b["prompt"]) == [
        {"prompt": "P1", "responses": ["a", "ccc"]},
        {"prompt": "P2", "responses": ["bb"]},
    ]
    assert [v.score for v in verdicts] == pytest.approx([0.01, 0.02, 0.03])


def test_trailing_v1_is_not_doubled() -> None:
    server = Recorder(json_ok)
    endpoint = JSON_RM.model_copy(update={"base_url": "http://rm.test:8100/v1/"})
    verify(endpoint, server, cands("a"))
    assert str(server.requests[0].url) == "http://rm.test:8100/v1/reward"


def test_auth_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_TEST_RM_KEY", "sk-secret")
    endpoint = CLASSIFY.model_copy(update={"api_key_env": "TTC_TEST_RM_KEY"})
    server = Recorder(classify_ok)
    verify(endpoint, server, cands("a"))
    assert server.requests[0].headers["authorization"] == "Bearer sk-secret"


def test_429_retry_after_then_success() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(429, headers={"Retry-After": "2"}, text="slow down")
        if calls["n"] == 2:
            return httpx.Response(429, headers={"Retry-After": "3600"}, text="slow down")
        return classify_ok(request)

    sleeps: list[float] = []
    server = Recorder(handler)
    verdicts = verify(CLASSIFY, server, cands("abc"), sleeps=sleeps)
    assert len(server.requests) == 3
    assert sleeps == [2.0, 30.0]  # honoured, capped at 30 s
    assert verdicts[0].score == pytest.approx(0.007)


def test_500_until_retries_exhausted() -> None:
    server = Recorder(lambda r: httpx.Response(503, text="overloaded"))
    sleeps: list[float] = []
    with pytest.raises(VerifierError) as info:
        verify(CLASSIFY, server, cands("a"), sleeps=sleeps)
    assert len(server.requests) == CLASSIFY.max_retries + 1
    message = str(info.value)
    assert "rm-7b" in message
    assert "4 attempts" in message
    assert "503" in message
    # Exponential backoff with jitter: each wait in [d/2, d], d = 0.5 * 2**attempt.
    assert len(sleeps) == 3
    for attempt, slept in enumerate(sleeps):
        assert 0.25 * 2**attempt <= slept <= 0.5 * 2**attempt


def test_no_retries_configured() -> None:
    endpoint = CLASSIFY.model_copy(update={"max_retries": 0})
    server = Recorder(lambda r: httpx.Response(500))
    with pytest.raises(VerifierError, match="1 attempt;"):
        verify(endpoint, server, cands("a"))
    assert len(server.requests) == 1


def test_connect_error_and_timeout_are_retried() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("connection refused", request=request)
        if calls["n"] == 2:
            raise httpx.ReadTimeout("timed out", request=request)
        return classify_ok(request)

    server = Recorder(handler)
    verdicts = verify(CLASSIFY, server, cands("a"))
    assert calls["n"] == 3
    assert verdicts[0].score is not None


def test_connect_errors_exhausted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(VerifierError, match="ConnectError"):
        verify(CLASSIFY, Recorder(handler), cands("a"))


def test_client_error_is_not_retried() -> None:
    server = Recorder(lambda r: httpx.Response(400, json={"error": "model not found"}))
    with pytest.raises(VerifierError, match="400"):
        verify(CLASSIFY, server, cands("a"))
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"data": [{"index": 0}]},
        {"data": [{"index": 0, "probs": []}]},
        {"data": [{"index": 0, "probs": ["high"]}]},
        {"data": [{"index": 5, "probs": [0.1, 0.9]}]},
        {"data": []},
        {"nope": 1},
        [1, 2],
    ],
)
def test_malformed_classify_response(payload: Any) -> None:
    server = Recorder(lambda r: httpx.Response(200, json=payload))
    with pytest.raises(VerifierError, match="rm-7b"):
        verify(CLASSIFY, server, cands("a"))


def test_malformed_json_protocol_response() -> None:
    server = Recorder(lambda r: httpx.Response(200, json={"scores": [0.1, 0.2]}))
    with pytest.raises(VerifierError, match="2 scores for 1 inputs"):
        verify(JSON_RM, server, cands("a"))
    not_json = Recorder(lambda r: httpx.Response(200, text="<html>"))
    with pytest.raises(VerifierError, match="not JSON"):
        verify(JSON_RM, not_json, cands("a"))


def test_one_failing_batch_fails_the_call() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "boom" in json.loads(request.content)["input"][0]:
            return httpx.Response(400, text="bad")
        return classify_ok(request)

    with pytest.raises(VerifierError, match="400"):
        verify(CLASSIFY, Recorder(handler), cands("ok", "boom", "ok"), batch_size=1)


def test_reference_reports_correct_but_score_is_reward() -> None:
    server = Recorder(classify_ok)
    verdicts = verify(
        CLASSIFY,
        server,
        cands("Work...\nANSWER: 72", "Work...\nANSWER: 71", "no idea"),
        reference="72",
    )
    right, wrong, none = verdicts
    assert right.correct is True
    assert right.answer == "72"
    assert right.score == pytest.approx(len("Q?\n\nWork...\nANSWER: 72") / 1000)
    assert wrong.correct is False
    assert wrong.feedback == "expected 72, got 71"
    assert wrong.score is not None and wrong.score > 0
    assert none.correct is False
    assert none.answer is None


def test_empty_batch_makes_no_request() -> None:
    server = Recorder(classify_ok)
    assert verify(CLASSIFY, server, []) == []
    assert server.requests == []


def test_rejects_generate_endpoint() -> None:
    endpoint = EndpointConfig(base_url="http://x/v1", model="m")

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            RewardModelVerifier(endpoint, client)

    with pytest.raises(ValueError, match="not a reward endpoint"):
        asyncio.run(go())


def test_default_sleep_is_asyncio_sleep() -> None:
    """A real (short) backoff: the default sleep path works without injection."""
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(503, headers={"Retry-After": "0"})
        return classify_ok(request)

    async def go() -> list[Verdict]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            verifier = RewardModelVerifier(CLASSIFY, client)
            waited: Awaitable[list[Verdict]] = verifier.verify(cands("a"))
            return await asyncio.wait_for(waited, timeout=10)

    assert asyncio.run(go())[0].score is not None
    assert calls["n"] == 2
