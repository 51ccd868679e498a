"""The ``n`` fallback for servers that cap or refuse ``n``, on llama.cpp's exact answers.

llama.cpp (its server source, and a build from source in ``tests/conformance``) answers
``n`` above ``--parallel`` with 400 ``Field 'n': Value must be between 1 <= value <= N, but
got K`` (no ``param``); builds before ``n`` support answer any ``n`` > 1 with HTTP 500
"Only one completion choice is allowed". These tests answer with those bodies from an
in-process transport and check what the client sends: requests of at most N with seeds
seed + offset, the limit remembered per endpoint (and through Redis across workers), no
retry of the 500 and no breaker count.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.helpers import REDIS_BASE
from ttc_core.errors import InferenceError, RejectedRequestError, RetryableInferenceError
from ttc_core.inference.client import (
    _N_LIMITS,
    GenerationRequest,
    InferenceClient,
    n_limit,
    rejects_n,
)
from ttc_core.inference.limiter import LocalLimiter, RedisLimiter
from ttc_core.settings import EndpointConfig

LLAMA_400 = (
    '{"error":{"code":400,"message":"Field \'n\': Value must be between 1 <= value <= 4, '
    'but got 16","type":"invalid_request_error"}}'
)
LLAMA_500 = (
    '{"error":{"code":500,"message":"Only one completion choice is allowed","type":"server_error"}}'
)


class FakeLlama:
    """Answers chat requests like llama-server: ``n`` up to ``parallel``, else the refusal
    of its version (``old``: the 500 of builds without ``n``); choice i seeded seed + i."""

    def __init__(self, parallel: int = 4, old: bool = False) -> None:
        self.parallel = 1 if old else parallel
        self.old = old
        self.sent: list[tuple[int, int | None]] = []  # (n, seed) of every request
        self.answered: list[int] = []  # status of every request

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        n, seed = int(body.get("n", 1)), body.get("seed")
        self.sent.append((n, seed))
        if n > self.parallel:
            status, text = (500, LLAMA_500) if self.old else (400, self._range(n))
            self.answered.append(status)
            return httpx.Response(status, text=text)
        self.answered.append(200)
        choices = [
            {
                "index": i,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": f"sample of seed {seed + i}"},
            }
            for i in range(n)
        ]
        usage = {"prompt_tokens": 7, "completion_tokens": 5 * n, "total_tokens": 7 + 5 * n}
        return httpx.Response(200, json={"choices": choices, "usage": usage})

    def _range(self, n: int) -> str:
        return LLAMA_400.replace("<= 4", f"<= {self.parallel}").replace("got 16", f"got {n}")


def _endpoint(**fields: Any) -> EndpointConfig:
    values: dict[str, Any] = {
        "base_url": f"http://llama-{uuid.uuid4().hex[:8]}.test/v1",
        "model": "tiny",
        "timeout_s": 5.0,
        "max_retries": 3,
        "breaker_threshold": 2,
        # the n fallback is the same on any server; llama.cpp's own routes are tested in
        # test_llamacpp_units and tests/conformance
        "server": "generic",
    }
    return EndpointConfig(**{**values, **fields})


def _run(
    fake: Callable[[httpx.Request], httpx.Response],
    ep: EndpointConfig,
    scenario: Callable[[Callable[[], InferenceClient]], Any],
    limiter_factory: Callable[[], Any] = LocalLimiter,
) -> Any:
    async def main() -> Any:
        made: list[Any] = []
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as http:

            def client() -> InferenceClient:
                limiter = limiter_factory()
                made.append(limiter)
                return InferenceClient("llama", ep, http, limiter)

            try:
                return await scenario(client)
            finally:
                for limiter in made:
                    if closer := getattr(limiter, "aclose", None):
                        await closer()

    return asyncio.run(main())


def _req(n: int, seed: int | None = 1000) -> GenerationRequest:
    return GenerationRequest(n=n, messages=[{"role": "user", "content": "hi"}], seed=seed)


def test_capped_n_splits_into_requests_of_the_cap_with_distinct_seeds() -> None:
    fake, ep = FakeLlama(parallel=4), _endpoint()

    async def scenario(client: Callable[[], InferenceClient]) -> Any:
        c = client()
        first = await c.generate(_req(16))
        second = await c.generate(_req(16, seed=5000))
        return c, first, second

    c, first, second = _run(fake, ep, scenario)
    assert [ch.seed for ch in first.choices] == list(range(1000, 1016))
    assert [ch.index for ch in first.choices] == list(range(16))
    assert [ch.text for ch in first.choices] == [f"sample of seed {s}" for s in range(1000, 1016)]
    assert len({ch.text for ch in first.choices}) == 16
    # one refused n=16, then four n=4 requests seeded 1000, 1004, 1008, 1012
    assert fake.sent[:5] == [(16, 1000), (4, 1000), (4, 1004), (4, 1008), (4, 1012)]
    assert first.requests == 4
    # the second job goes straight to n=4: nothing refused again
    assert fake.sent[5:] == [(4, 5000), (4, 5004), (4, 5008), (4, 5012)]
    assert [ch.seed for ch in second.choices] == list(range(5000, 5016))
    assert fake.answered.count(400) == 1
    assert c.max_n == 4
    assert c.breaker.failures == 0 and c.breaker.openings == 0 and c.failed_attempts == 0
    assert sum(ch.completion_tokens for ch in first.choices) == 5 * 16


def test_old_llamacpp_500_is_not_retried_nor_counted_by_the_breaker() -> None:
    fake, ep = FakeLlama(old=True), _endpoint()

    async def scenario(client: Callable[[], InferenceClient]) -> Any:
        c = client()
        first = await c.generate(_req(16))
        second = await c.generate(_req(3, seed=7))
        return c, first, second

    c, first, second = _run(fake, ep, scenario)
    assert fake.answered.count(500) == 1  # no retries of the refusal
    assert fake.sent[0] == (16, 1000)
    assert sorted(s or 0 for _, s in fake.sent[1:17]) == list(range(1000, 1016))
    assert all(n == 1 for n, _ in fake.sent[1:])
    assert [ch.seed for ch in first.choices] == list(range(1000, 1016))
    assert len({ch.text for ch in first.choices}) == 16
    assert fake.sent[17:] == [(1, 7), (1, 8), (1, 9)]  # straight to n=1 afterwards
    assert second.requests == 3
    assert c.breaker.failures == 0 and c.breaker.openings == 0 and not c.breaker.is_open
    assert c.failed_attempts == 0


def test_a_real_500_on_n_above_1_is_still_retried_and_counted() -> None:
    calls: list[int] = []

    def broken(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(500, text='{"error":{"message":"CUDA out of memory"}}')

    ep = _endpoint(max_retries=1)

    async def scenario(client: Callable[[], InferenceClient]) -> Any:
        c = client()
        with pytest.raises(RetryableInferenceError):
            await c.generate(_req(4))
        return c

    c = _run(broken, ep, scenario)
    assert len(calls) == 2  # tried, retried once
    assert c.failed_attempts == 2 and c.breaker.failures == 2


def test_the_limit_is_remembered_per_endpoint_in_the_process() -> None:
    fake, ep = FakeLlama(parallel=3), _endpoint()

    async def scenario(client: Callable[[], InferenceClient]) -> Any:
        await client().generate(_req(8))
        later = client()  # a new client of the same endpoint (another job's context)
        await later.generate(_req(8, seed=0))
        return later

    later = _run(fake, ep, scenario)
    assert later.max_n == 3
    assert fake.answered.count(400) == 1
    assert fake.sent[-3:] == [(3, 0), (3, 3), (2, 6)]
    other = _endpoint()  # another endpoint learns nothing from this one
    assert (("llama", other.base_url)) not in _N_LIMITS


def test_the_limit_is_shared_across_workers_through_redis() -> None:
    redis = pytest.importorskip("redis")
    url = f"{REDIS_BASE}/7"
    redis.Redis.from_url(url).flushdb()
    fake, ep = FakeLlama(parallel=2), _endpoint()

    async def scenario(client: Callable[[], InferenceClient]) -> Any:
        await client().generate(_req(4))
        _N_LIMITS.clear()  # another worker process: nothing learnt in its memory
        fresh = client()
        assert fresh.max_n == ep.max_n_per_request
        await fresh.generate(_req(4, seed=10))
        return fresh

    fresh = _run(fake, ep, scenario, lambda: RedisLimiter(url, prefix="ttc:test-n"))
    assert fresh.max_n == 2
    assert fake.answered.count(400) == 1  # the second worker never sent n=4
    assert fake.sent[-2:] == [(2, 10), (2, 12)]


def test_supports_n_false_still_sends_n_1() -> None:
    fake, ep = FakeLlama(parallel=4), _endpoint(supports_n=False)
    gen = _run(fake, ep, lambda client: client().generate(_req(3)))
    assert fake.sent == [(1, 1000), (1, 1001), (1, 1002)]
    assert len(gen.choices) == 3


@pytest.mark.parametrize(
    ("exc", "limit"),
    [
        (RejectedRequestError("HTTP 400", status=400, body=LLAMA_400), 4),
        (RejectedRequestError("HTTP 400", status=400, body=LLAMA_400.replace("4,", "16,")), 16),
        (RetryableInferenceError(f"HTTP 500: {LLAMA_500}", status=500), 1),
        (
            RejectedRequestError(
                "HTTP 400",
                status=400,
                body='{"error":{"message":"Invalid \'n\': integer above maximum value. '
                'Expected a value <= 128, but got 200 instead.","param":"n"}}',
            ),
            128,
        ),
        (RejectedRequestError("x", status=400, body='{"error":{"message":"n","param":"n"}}'), 1),
        (RetryableInferenceError("HTTP 500: out of memory", status=500), None),
        (RetryableInferenceError("HTTP 503: Only one completion choice", status=503), None),
        (
            RejectedRequestError(
                "x",
                status=400,
                body='{"error":{"message":"Field \'top_k\': Value must be between 0 <= value '
                '<= 100, but got 200"}}',
            ),
            None,
        ),
        (InferenceError("asked for 4 choices, got 1"), None),
    ],
)
def test_n_limit_reads_the_refusal(exc: InferenceError, limit: int | None) -> None:
    assert n_limit(exc) == limit
    assert rejects_n(exc) is (limit is not None)
