"""The circuit breaker stops hammering a failing endpoint and recovers when it heals."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from ttc_core.errors import RetryableInferenceError
from ttc_core.inference import GenerationRequest, InferenceClient, LocalLimiter
from ttc_core.inference.breaker import CircuitBreaker
from ttc_core.settings import EndpointConfig

OK = {
    "choices": [{"index": 0, "message": {"content": "ANSWER: 1"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
}


def test_breaker_opens_after_threshold_and_doubles_its_cooldown() -> None:
    breaker = CircuitBreaker("e", threshold=3, cooldown_s=0.05, max_cooldown_s=0.15)
    for _ in range(2):
        breaker.record_failure()
    assert not breaker.is_open
    breaker.record_failure()
    assert breaker.is_open and breaker.openings == 1
    assert breaker.cooldown_s == pytest.approx(0.1)  # the next opening lasts longer
    began = time.monotonic()
    asyncio.run(breaker.wait_closed())
    assert time.monotonic() - began >= 0.04
    breaker.record_failure()  # the half-open probe failed: open again
    assert breaker.is_open and breaker.openings == 2
    assert breaker.cooldown_s == pytest.approx(0.15)  # capped
    breaker.record_success()
    assert breaker.failures == 0 and breaker.cooldown_s == pytest.approx(0.05)


def test_client_backs_off_a_dead_endpoint_then_recovers() -> None:
    calls: list[float] = []
    healthy_after = float("inf")  # dead for half a second from the first generation request

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal healthy_after
        if not request.url.path.endswith("/chat/completions"):
            return httpx.Response(404)  # the server probe: nothing to learn here
        now = time.monotonic()
        if not calls:
            healthy_after = now + 0.5
        calls.append(now)
        # Dead for half a second and for at least the breaker's threshold plus one: a
        # loaded machine's slow retries must not outlive the dead time before it opens.
        if now < healthy_after or len(calls) <= 4:
            return httpx.Response(500, json={"error": {"message": "down"}})
        return httpx.Response(200, json=OK)

    endpoint = EndpointConfig(
        base_url="http://gpu.test/v1",
        model="m",
        max_retries=20,
        breaker_threshold=3,
        breaker_cooldown_s=0.2,
    )

    async def scenario() -> int:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = InferenceClient("gpu", endpoint, http, LocalLimiter())
            generation = await client.generate(GenerationRequest(n=1, prompt="q", seed=1))
            assert client.breaker.openings >= 1
            return len(generation.choices)

    assert asyncio.run(scenario()) == 1
    # Without the breaker, 20 quick retries would all land in the dead half second;
    # with it, the endpoint saw a handful.
    dead = [t for i, t in enumerate(calls) if t < healthy_after or i < 4]
    assert len(dead) <= 8, len(dead)


def test_breaker_does_not_swallow_the_final_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": {"message": "down"}})

    endpoint = EndpointConfig(
        base_url="http://gpu.test/v1",
        model="m",
        max_retries=2,
        breaker_threshold=1,
        breaker_cooldown_s=0.01,
    )

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = InferenceClient("gpu", endpoint, http, LocalLimiter())
            await client.generate(GenerationRequest(n=1, prompt="q"))

    with pytest.raises(RetryableInferenceError):
        asyncio.run(scenario())
