"""An endpoint of several replicas: failover, rotation, probes, DNS, limits and n splits."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
import redis

from tests.helpers import REDIS_BASE
from ttc_core.inference import GenerationRequest, InferenceClient, LocalLimiter
from ttc_core.inference.fleet import Fleet
from ttc_core.inference.health import Health
from ttc_core.inference.limiter import RedisLimiter
from ttc_core.settings import EndpointConfig

URLS = [f"http://gpu-{i}.test:8000/v1" for i in range(4)]


def answer(request: httpx.Request) -> httpx.Response:
    n = json.loads(request.content).get("n", 1)
    choices = [
        {"index": i, "message": {"content": f"ANSWER: {i}"}, "finish_reason": "stop"}
        for i in range(n)
    ]
    return httpx.Response(
        200, json={"choices": choices, "usage": {"prompt_tokens": 5, "completion_tokens": n}}
    )


def fleet_endpoint(urls: list[str], **fields: Any) -> EndpointConfig:
    values: dict[str, Any] = {
        "base_urls": urls,
        "model": "m",
        "server": "vllm",
        "max_retries": 4,
        "health_interval_s": 0,  # the tests probe by hand
        "breaker_cooldown_s": 30,
        "routing": {"policy": "round_robin"},
    }
    values.update(fields)
    return EndpointConfig(**values)


def test_a_dead_replica_is_failed_over_then_left_out_of_rotation() -> None:
    dead = {"gpu-0.test"}
    seen: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        seen[host] += 1
        if host in dead:
            raise httpx.ConnectError("connection refused")
        if request.url.path == "/health":
            return httpx.Response(200)
        return answer(request)

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = InferenceClient("fleet", fleet_endpoint(URLS[:2]), http, LocalLimiter())
            for i in range(6):  # every request succeeds: a retry goes to the other replica
                generation = await client.generate(GenerationRequest(n=1, prompt=f"q{i}"))
                assert len(generation.choices) == 1
            first = client.fleet.replicas[0]
            assert first.health.state is Health.DOWN
            assert "connection refused" in (first.health.reason or "")
            assert client.breaker.openings == 0  # the endpoint as a whole stayed up
            tried_dead = seen["gpu-0.test"]
            assert tried_dead == 3  # health_fall failures, then no more
            for i in range(4):
                await client.generate(GenerationRequest(n=1, prompt=f"later {i}"))
            assert seen["gpu-0.test"] == tried_dead
            # It recovers: two good probes in a row bring it back into rotation.
            dead.clear()
            assert await client.fleet.probe(first) and first.health.state is Health.DOWN
            assert await client.fleet.probe(first) and first.health.state is Health.UP
            before = seen["gpu-0.test"]
            for i in range(4):
                await client.generate(GenerationRequest(n=1, prompt=f"back {i}"))
            assert seen["gpu-0.test"] - before == 2  # round robin again

    asyncio.run(scenario())


def test_probes_of_the_servers_health_route_find_a_sick_replica() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            paths.append(f"{request.url.host}{request.url.path}")
            return httpx.Response(503 if request.url.host == "gpu-1.test" else 200)
        return answer(request)

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            ep = fleet_endpoint(URLS[:2], health_interval_s=0.01, health_fall=2)
            client = InferenceClient("fleet", ep, http, LocalLimiter())
            for i in range(30):
                await client.generate(GenerationRequest(n=1, prompt=f"q{i}"))
                await asyncio.sleep(0.012)
                if client.fleet.replicas[1].health.state is Health.DOWN:
                    break
            assert client.fleet.replicas[1].health.state is Health.DOWN
            assert "answered 503" in (client.fleet.replicas[1].health.reason or "")
            await client.fleet.aclose()

    asyncio.run(scenario())
    assert "gpu-1.test/health" in paths and "gpu-0.test/health" in paths


def test_dns_discovery_follows_the_names_addresses() -> None:
    answers = [["10.0.0.1", "10.0.0.2"], ["10.0.0.2", "10.0.0.3", "fd00::4"]]
    asked: list[tuple[str, int]] = []
    now = [0.0]

    async def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return answers[min(len(asked), len(answers)) - 1]

    async def scenario() -> None:
        ep = EndpointConfig(
            base_url="http://vllm.svc:8000/v1", model="m", discovery="dns", dns_refresh_s=30
        )
        async with httpx.AsyncClient() as http:
            fleet = Fleet("e", ep, http, resolver=resolver, clock=lambda: now[0])
            await fleet.sync()
            assert [r.url for r in fleet.replicas] == [
                "http://10.0.0.1:8000/v1",
                "http://10.0.0.2:8000/v1",
            ]
            await fleet.sync()  # not due yet
            assert len(asked) == 1
            now[0] = 31.0
            await fleet.sync()
            assert sorted(r.url for r in fleet.replicas) == [
                "http://10.0.0.2:8000/v1",
                "http://10.0.0.3:8000/v1",
                "http://[fd00::4]:8000/v1",
            ]

    asyncio.run(scenario())
    assert asked == [("vllm.svc", 8000), ("vllm.svc", 8000)]


def test_a_large_n_fills_every_replica_and_a_small_one_stays_whole() -> None:
    bodies: list[tuple[str, int]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        bodies.append((request.url.host, json.loads(request.content)["n"]))
        await asyncio.sleep(0.01)  # the pieces are in flight together
        return answer(request)

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            ep = fleet_endpoint(URLS, routing={"policy": "prefix_affinity"}, max_n_per_request=64)
            client = InferenceClient("fleet", ep, http, LocalLimiter())
            big = await client.generate(GenerationRequest(n=64, prompt="root", seed=7))
            assert [c.seed for c in big.choices] == list(range(7, 71))
            assert sorted(n for _, n in bodies) == [16, 16, 16, 16]
            assert len({host for host, _ in bodies}) == 4  # one share per replica
            bodies.clear()
            await client.generate(GenerationRequest(n=8, prompt="small", seed=7))
            assert [n for _, n in bodies] == [8]

    asyncio.run(scenario())


def test_per_replica_concurrency_is_capped_beside_the_endpoints() -> None:
    in_flight: Counter[str] = Counter()
    peak: Counter[str] = Counter()

    async def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        in_flight[host] += 1
        peak[host] = max(peak[host], in_flight[host])
        await asyncio.sleep(0.01)
        in_flight[host] -= 1
        return answer(request)

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            ep = fleet_endpoint(URLS[:2], replica_max_concurrency=2, max_concurrency=64)
            client = InferenceClient("fleet", ep, http, LocalLimiter())
            await asyncio.gather(
                *(client.generate(GenerationRequest(n=1, prompt=f"q{i}")) for i in range(12))
            )

    asyncio.run(scenario())
    assert peak == Counter({"gpu-0.test": 2, "gpu-1.test": 2})


def test_replica_limits_hold_across_worker_processes() -> None:
    """Two clients, each with its own Redis limiter (as two worker processes have), keep
    each replica within its ``replica_max_concurrency`` together."""
    url = f"{REDIS_BASE}/14"
    probe = redis.Redis.from_url(url)
    try:
        probe.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {url}")
    finally:
        probe.close()
    prefix = f"ttc:test:fleet:{uuid.uuid4().hex[:12]}"
    in_flight: Counter[str] = Counter()
    peak: Counter[str] = Counter()

    async def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        in_flight[host] += 1
        peak[host] = max(peak[host], in_flight[host])
        await asyncio.sleep(0.02)
        in_flight[host] -= 1
        return answer(request)

    async def worker(http: httpx.AsyncClient, tag: str) -> None:
        limiter = RedisLimiter(url, prefix=prefix)
        try:
            ep = fleet_endpoint(URLS[:2], replica_max_concurrency=2, max_concurrency=64)
            client = InferenceClient("fleet", ep, http, limiter)
            await asyncio.gather(
                *(client.generate(GenerationRequest(n=1, prompt=f"{tag}{i}")) for i in range(8))
            )
        finally:
            await limiter.aclose()

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            await asyncio.gather(worker(http, "a"), worker(http, "b"))

    asyncio.run(scenario())
    assert peak == Counter({"gpu-0.test": 2, "gpu-1.test": 2})
