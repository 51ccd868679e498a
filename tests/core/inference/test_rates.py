"""Requests-per-minute and tokens-per-minute limits hold, in one process and across
processes sharing Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import redis

from tests.helpers import REDIS_BASE
from ttc_core.inference import GenerationRequest, InferenceClient, LocalLimiter, RedisLimiter
from ttc_core.inference.limiter import BURST_S
from ttc_core.settings import EndpointConfig

OK = {
    "choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
}


def _timed_requests(endpoint: EndpointConfig, limiter: object, count: int) -> list[float]:
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        return httpx.Response(200, json=OK)

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = InferenceClient("e", endpoint, http, limiter)  # type: ignore[arg-type]
            await asyncio.gather(
                *(
                    client.generate(GenerationRequest(n=1, prompt="q", max_tokens=10))
                    for _ in range(count)
                )
            )
            closer = getattr(limiter, "aclose", None)
            if closer is not None:
                await closer()

    asyncio.run(scenario())
    return sorted(sent)


def test_requests_per_minute_local() -> None:
    # 600/min = 10/s with a 10 s burst of 100: the first 100 go at once, then 10 per second.
    endpoint = EndpointConfig(base_url="http://x/v1", model="m", requests_per_minute=600)
    sent = _timed_requests(endpoint, LocalLimiter(), 105)
    burst = int(600 / 60 * BURST_S)
    # At once: well under the 9.9 s they would take at 10/s (a loaded machine may need
    # more than a few ms to send 100 requests).
    assert sent[burst - 1] - sent[0] < 2.0
    assert sent[-1] - sent[0] >= (105 - burst) / 10 - 0.05


def test_tokens_per_minute_local() -> None:
    # Each request reserves 10 tokens (+0 for a 1-char prompt); 600 tokens/min = 10/s,
    # burst 100 tokens = 10 requests, then one request per second.
    endpoint = EndpointConfig(base_url="http://x/v1", model="m", tokens_per_minute=600)
    sent = _timed_requests(endpoint, LocalLimiter(), 12)
    assert sent[9] - sent[0] < 1.0  # the burst: at the rate they would take 9 s
    assert sent[-1] - sent[0] >= 1.9


def test_requests_per_minute_shared_through_redis() -> None:
    url = f"{REDIS_BASE}/14"
    redis.Redis.from_url(url).flushdb()
    endpoint = EndpointConfig(base_url="http://x/v1", model="m", requests_per_minute=600)
    prefix = f"ttc:test:{uuid.uuid4().hex}"
    sent = _timed_requests(endpoint, RedisLimiter(url, prefix=prefix), 103)
    assert sent[-1] - sent[0] >= (103 - 100) / 10 - 0.05
