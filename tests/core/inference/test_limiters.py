"""Endpoint concurrency limits seen from the server: LocalLimiter inside one process and
RedisLimiter shared by two processes, plus the reclaiming of a dead holder's slot."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.core.inference._support import (
    MESSAGES,
    endpoint,
    generate_one,
    request,
    sim_config,
    texts,
    with_client,
)
from tests.helpers import REDIS_BASE
from ttc_core.errors import RetryableInferenceError
from ttc_core.inference.client import Generation, InferenceClient
from ttc_core.inference.limiter import LocalLimiter, RedisLimiter
from ttc_sim.runner import SimServer

ROOT = Path(__file__).resolve().parents[3]
REDIS_URL = f"{REDIS_BASE}/14"


@pytest.fixture(scope="module")
def redis_db() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(REDIS_URL)
    try:
        r.ping()
    except redis.ConnectionError:
        r.close()
        pytest.skip(f"no Redis at {REDIS_URL}")
    r.flushdb()
    yield r
    r.close()


@pytest.fixture
def prefix(redis_db: redis.Redis) -> Iterator[str]:
    p = f"ttc:test:sem:{uuid.uuid4().hex[:12]}"
    yield p
    for key in redis_db.scan_iter(f"{p}:*"):
        redis_db.delete(key)


def _redis_now(r: redis.Redis) -> float:
    seconds, micros = r.time()
    return float(seconds) + micros / 1_000_000


# ------------------------------------------------------------------------------ local


def test_local_limiter_caps_and_saturates() -> None:
    with SimServer(sim_config(base_latency_s=0.02)) as sim:
        ep = endpoint(sim, max_concurrency=3, max_n_per_request=1)
        gen = generate_one(ep, request(24, seed=3))
        m = sim.metrics
    assert len(gen.choices) == 24 and gen.requests == 24
    assert m["requests_total"] == 24
    assert m["peak_in_flight_requests"] == 3


def test_local_limiter_is_shared_by_clients_of_one_endpoint() -> None:
    """Two clients with the same name and limiter share the endpoint's slots."""
    with SimServer(sim_config(base_latency_s=0.02)) as sim:
        ep = endpoint(sim, max_concurrency=3, max_n_per_request=1)

        async def main() -> list[Generation]:
            limiter = LocalLimiter()

            async def one(seed: int) -> Generation:
                async def scenario(client: InferenceClient) -> Generation:
                    return await client.generate(request(12, seed=seed))

                result: Generation = await with_client(ep, scenario, limiter)
                return result

            return list(await asyncio.gather(one(1), one(100)))

        gens = asyncio.run(main())
        m = sim.metrics
    assert [len(g.choices) for g in gens] == [12, 12]
    assert m["requests_total"] == 24
    assert m["peak_in_flight_requests"] == 3


# ------------------------------------------------------------------------------ Redis

_WORKER = r"""
import asyncio, json, sys, time
import httpx, redis
from ttc_core.inference.client import GenerationRequest, InferenceClient
from ttc_core.inference.limiter import RedisLimiter
from ttc_core.settings import EndpointConfig

args = json.loads(sys.argv[1])


async def main():
    limiter = RedisLimiter(args["redis"], prefix=args["prefix"])
    sync = redis.Redis.from_url(args["redis"])
    try:
        async with httpx.AsyncClient() as http:
            client = InferenceClient("sim", EndpointConfig(**args["endpoint"]), http, limiter)
            sync.incr(args["ready"])
            deadline = time.monotonic() + 30
            while not sync.exists(args["go"]):
                if time.monotonic() > deadline:
                    raise SystemExit("never told to go")
                await asyncio.sleep(0.002)
            began = time.time()
            gen = await client.generate(
                GenerationRequest(n=24, messages=args["messages"], seed=args["seed"])
            )
            ended = time.time()
    finally:
        sync.close()
        await limiter.aclose()
    return {
        "began": began,
        "ended": ended,
        "requests": gen.requests,
        "seeds": [c.seed for c in gen.choices],
        "texts": [c.text for c in gen.choices],
    }


print(json.dumps(asyncio.run(main())))
"""


def test_redis_limiter_caps_two_processes(redis_db: redis.Redis, prefix: str) -> None:
    with SimServer(sim_config(base_latency_s=0.03)) as sim:
        ep = endpoint(sim, max_concurrency=4, max_n_per_request=1)
        ready, go = f"{prefix}:ready", f"{prefix}:go"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _WORKER,
                    json.dumps(
                        {
                            "redis": REDIS_URL,
                            "prefix": prefix,
                            "endpoint": ep.model_dump(),
                            "messages": MESSAGES,
                            "seed": seed,
                            "ready": ready,
                            "go": go,
                        }
                    ),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for seed in (10, 1000)
        ]
        try:
            deadline = time.monotonic() + 30
            while int(redis_db.get(ready) or 0) < 2:
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                assert time.monotonic() < deadline, "workers did not get ready"
                time.sleep(0.01)
            sim.reset_metrics()
            redis_db.set(go, 1)
            outs = [p.communicate(timeout=30) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        m = sim.metrics
        alone = generate_one(endpoint(sim), request(24, seed=10))
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    results = [json.loads(out) for out, _ in outs]

    assert [r["seeds"] for r in results] == [list(range(10, 34)), list(range(1000, 1024))]
    assert [r["requests"] for r in results] == [24, 24]
    # the two runs overlapped in time, so an unshared limit would have allowed 8
    assert max(r["began"] for r in results) < min(r["ended"] for r in results)
    assert m["requests_total"] == 48
    assert m["peak_in_flight_requests"] == 4
    # every slot was given back
    assert redis_db.zcard(f"{prefix}:sim") == 0
    assert results[0]["texts"] == texts(alone)


def test_redis_limiter_reclaims_an_expired_slot(redis_db: redis.Redis, prefix: str) -> None:
    key = f"{prefix}:sim"
    # two slots of a limit of two, held by a worker that died without releasing them
    expiry = _redis_now(redis_db) + 1.0
    redis_db.zadd(key, {"dead-holder-1": expiry, "dead-holder-2": expiry})
    with SimServer(sim_config()) as sim:
        ep = endpoint(sim, max_concurrency=2)

        async def main() -> Generation:
            limiter = RedisLimiter(REDIS_URL, prefix=prefix)
            try:

                async def scenario(client: InferenceClient) -> Generation:
                    return await client.generate(request(2, seed=1))

                result: Generation = await with_client(ep, scenario, limiter)
                return result
            finally:
                await limiter.aclose()

        began = time.perf_counter()
        gen = asyncio.run(main())
        elapsed = time.perf_counter() - began
        assert sim.metrics["requests_total"] == 1
    assert len(gen.choices) == 2
    assert 0.9 <= elapsed < 3.0
    assert redis_db.zcard(key) == 0


def test_redis_limiter_waits_for_a_live_holder(redis_db: redis.Redis, prefix: str) -> None:
    """A slot that is released (not expired) is reused quickly through the wake-up."""
    with SimServer(sim_config(base_latency_s=0.05)) as sim:
        ep = endpoint(sim, max_concurrency=1, max_n_per_request=1)

        async def main() -> Generation:
            limiter = RedisLimiter(REDIS_URL, prefix=prefix)
            try:

                async def scenario(client: InferenceClient) -> Generation:
                    return await client.generate(request(6, seed=1))

                result: Generation = await with_client(ep, scenario, limiter)
                return result
            finally:
                await limiter.aclose()

        began = time.perf_counter()
        gen = asyncio.run(main())
        elapsed = time.perf_counter() - began
        m = sim.metrics
    assert len(gen.choices) == 6
    assert m["peak_in_flight_requests"] == 1
    assert 0.3 <= elapsed < 2.0
    assert redis_db.zcard(f"{prefix}:sim") == 0


def test_redis_slot_is_released_when_the_request_fails(redis_db: redis.Redis, prefix: str) -> None:
    with SimServer(sim_config(fail_500_rate=1.0)) as sim:
        ep = endpoint(sim, max_concurrency=2, max_retries=0)

        async def main() -> None:
            limiter = RedisLimiter(REDIS_URL, prefix=prefix)
            try:

                async def scenario(client: InferenceClient) -> Generation:
                    return await client.generate(request(1))

                await with_client(ep, scenario, limiter)
            finally:
                await limiter.aclose()

        with pytest.raises(RetryableInferenceError):
            asyncio.run(main())
    assert redis_db.zcard(f"{prefix}:sim") == 0


def test_redis_release_wakes_other_processes_only_from_a_full_set(
    redis_db: redis.Redis, prefix: str
) -> None:
    """A release is one round trip; it publishes a wake-up only when the set was at its
    limit (someone may wait), and a waiter of another limiter (another process's) then
    gets the slot."""

    async def main() -> tuple[list[bytes], float]:
        holder, waiter = (
            RedisLimiter(REDIS_URL, prefix=prefix),
            RedisLimiter(REDIS_URL, prefix=prefix),
        )
        listener = redis_db.pubsub()
        listener.subscribe(f"{prefix}:wake:k")
        listener.get_message(timeout=1)  # the subscription's confirmation
        try:
            async with holder.slot("k", 2, 30):  # 1 of 2 held: nobody can be waiting
                pass
            quiet = listener.get_message(timeout=0.2)
            async with holder.slot("k", 1, 30):  # full: a waiter is woken on release
                got = asyncio.ensure_future(_enter(waiter, "k"))
                await asyncio.sleep(0.2)
                assert not got.done()
                released = time.perf_counter()
            woken_after = await got - released
            messages = [m["data"] for m in [quiet, listener.get_message(timeout=1)] if m]
            return messages, woken_after
        finally:
            listener.close()
            await holder.aclose()
            await waiter.aclose()

    messages, woken_after = asyncio.run(main())
    assert messages == [b"1"]  # the release from the full set, not the other
    assert woken_after < 1.0
    assert redis_db.zcard(f"{prefix}:k") == 0


async def _enter(limiter: RedisLimiter, key: str) -> float:
    async with limiter.slot(key, 1, 30):
        return time.perf_counter()
