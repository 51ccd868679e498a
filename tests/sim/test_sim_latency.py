from __future__ import annotations

import asyncio
import time

import httpx

from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.server import create_app


def test_slots_bound_concurrency_one_request() -> None:
    with (
        SimServer(slots=4, base_latency_s=0.05, per_token_latency_s=0) as sim,
        httpx.Client(base_url=sim.base_url, timeout=10) as c,
    ):
        start = time.perf_counter()
        r = c.post("/completions", json={"model": "sim", "prompt": "x", "n": 16})
        elapsed = time.perf_counter() - start
        assert r.status_code == 200 and len(r.json()["choices"]) == 16
        assert 0.19 <= elapsed < 0.6
        m = sim.metrics
        assert m["peak_in_flight_sequences"] == 4
        assert m["in_flight_sequences"] == 0 and m["queued_sequences"] == 0


def test_slots_bound_concurrency_many_requests() -> None:
    async def run(url: str) -> float:
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:
            start = time.perf_counter()
            rs = await asyncio.gather(
                *(c.post("/completions", json={"prompt": "x", "seed": i}) for i in range(16))
            )
            assert all(r.status_code == 200 for r in rs)
            return time.perf_counter() - start

    with SimServer(slots=4, base_latency_s=0.05, per_token_latency_s=0) as sim:
        elapsed = asyncio.run(run(sim.base_url))
        assert 0.19 <= elapsed < 0.8
        m = sim.metrics
        assert m["peak_in_flight_sequences"] == 4
        assert m["peak_in_flight_requests"] > 4


def test_per_token_latency() -> None:
    with (
        SimServer(slots=1, base_latency_s=0.0, per_token_latency_s=0.002) as sim,
        httpx.Client(base_url=sim.base_url, timeout=10) as c,
    ):
        start = time.perf_counter()
        r = c.post("/completions", json={"prompt": "x", "seed": 1, "max_tokens": 100})
        elapsed = time.perf_counter() - start
        tokens = r.json()["usage"]["completion_tokens"]
        assert tokens > 20
        assert tokens * 0.002 <= elapsed < tokens * 0.002 + 0.3


def test_throughput_1024_samples() -> None:
    """1024 samples, 64 slots, 50 ms base latency: about 16 waves of ~0.07 s."""

    async def run(url: str) -> float:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            start = time.perf_counter()
            rs = await asyncio.gather(
                *(
                    c.post("/completions", json={"model": "sim-gsm8k", "prompt": f"q{i}", "n": 64})
                    for i in range(16)
                )
            )
            assert sum(len(r.json()["choices"]) for r in rs) == 1024
            return time.perf_counter() - start

    with SimServer(SimConfig()) as sim:
        elapsed = asyncio.run(run(sim.base_url))
        assert 0.8 < elapsed < 3.0
        assert sim.metrics["peak_in_flight_sequences"] == 64


def test_in_process_asgi_transport() -> None:
    app = create_app(SimConfig(base_latency_s=0, per_token_latency_s=0))

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as c:
            r = await c.post("/v1/completions", json={"prompt": "hello", "seed": 1, "n": 2})
            assert r.status_code == 200 and len(r.json()["choices"]) == 2
            s = await c.post("/v1/completions", json={"prompt": "hello", "stream": True})
            assert s.text.endswith("data: [DONE]\n\n")

    asyncio.run(run())
    assert app.metrics.choices_total == 3
