"""The simulator's prefix cache: what it holds, what it reports, what it costs."""

from __future__ import annotations

import asyncio
import time

import httpx

from ttc_sim.config import SimConfig
from ttc_sim.kv import KVEngine
from ttc_sim.prefix_cache import PrefixCache
from ttc_sim.runner import SimServer
from ttc_sim.tasks import synthetic_problems
from ttc_sim.tokens import split_tokens

QUESTION = synthetic_problems(1, seed=3, steps=6)[0].question


def test_blocks_are_chained_whole_and_least_recently_used_go_first() -> None:
    cache = PrefixCache(capacity=4, block_size=4)
    a = [f"a{i}" for i in range(12)]
    cache.insert(a)
    assert len(cache) == 3
    assert cache.cached_tokens([*a, "x"]) == 12
    assert cache.cached_tokens(a) == 8  # the last token is always computed
    assert cache.cached_tokens(["z", *a[1:]]) == 0  # a block counts only after its prefix
    cache.insert([f"b{i}" for i in range(8)])  # two more blocks: a's oldest untouched go
    assert len(cache) == 4
    assert cache.cached_tokens([*a, "x"]) == 0  # its first block went first


def test_generated_blocks_are_cached_but_the_last_token_is_never_computed() -> None:
    engine = KVEngine(SimConfig(prefix_cache_blocks=16, block_size=4))
    prompt = "one two three four five"  # 5 tokens
    engine.generated(prompt, [" six seven eight"])  # 8 tokens with the completion
    # vLLM computes the KV of every token but the last sampled one: 7 tokens, 1 whole block.
    assert engine.cache.cached_tokens(split_tokens(prompt + " six seven eight nine")) == 4
    engine.generated(prompt, [" six seven eight nine"])  # 9: the second block is whole
    assert engine.cache.cached_tokens(split_tokens(prompt + " six seven eight nine ten")) == 8


def completion(client: httpx.Client, prompt: str, **fields: object) -> dict:
    body = {"model": "sim-gsm8k", "prompt": prompt, "max_tokens": 64, "seed": 1, **fields}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_usage_and_metrics_say_what_was_cached() -> None:
    with (
        SimServer(base_latency_s=0.001, per_token_latency_s=0, block_size=4) as sim,
        httpx.Client(base_url=sim.url, timeout=10) as client,
    ):
        first = completion(client, QUESTION, stop=["\n\n"])
        assert first["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
        again = completion(client, QUESTION)
        prompt_tokens = again["usage"]["prompt_tokens"]
        cached = again["usage"]["prompt_tokens_details"]["cached_tokens"]
        assert cached == (prompt_tokens - 1) // 4 * 4
        # The generated step (and its stop string) is cached too: a continuation of it
        # finds all but its last partial block.
        step = first["choices"][0]["text"]
        child = QUESTION + step + "\n\n"
        continued = completion(client, child)
        assert (
            continued["usage"]["prompt_tokens_details"]["cached_tokens"]
            >= len(split_tokens(child)) - 4
        )
        m = sim.metrics
        assert m["prefix_cache_queries_total"] == m["prompt_tokens_total"]
        assert m["prefix_cache_hits_total"] == sum(
            r["usage"]["prompt_tokens_details"]["cached_tokens"] for r in (first, again, continued)
        )
        assert (
            m["prefilled_tokens_total"] == m["prompt_tokens_total"] - m["prefix_cache_hits_total"]
        )
        text = client.get("/metrics", params={"format": "prometheus"}).text
        hits = m["prefix_cache_hits_total"]
        assert f'vllm:prefix_cache_hits_total{{model_name="ttc-sim"}} {hits}' in text
        assert "vllm:prefix_cache_queries_total" in text and "vllm:prompt_tokens_total" in text
        assert client.post("/reset_prefix_cache").status_code == 200
        cold = completion(client, QUESTION)
        assert cold["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_details_can_be_left_out_as_vllm_does_by_default() -> None:
    with (
        SimServer(base_latency_s=0.001, prompt_tokens_details=False) as sim,
        httpx.Client(base_url=sim.url, timeout=10) as client,
    ):
        assert "prompt_tokens_details" not in completion(client, QUESTION)["usage"]


def test_latency_grows_with_uncached_prompt_tokens() -> None:
    prompt = QUESTION * 8  # ~550 tokens
    with (
        SimServer(
            base_latency_s=0.0, per_token_latency_s=0.0, prefill_latency_per_token_s=0.0004
        ) as sim,
        httpx.Client(base_url=sim.url, timeout=10) as client,
    ):
        began = time.perf_counter()
        completion(client, prompt)
        cold = time.perf_counter() - began
        began = time.perf_counter()
        completion(client, prompt)
        warm = time.perf_counter() - began
    assert cold >= 0.2 and warm < cold / 3, (cold, warm)


def test_continuous_batching_queues_prefills_and_slows_decode_with_the_batch() -> None:
    async def burst(url: str, prompts: list[str], max_tokens: int) -> float:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            began = time.perf_counter()
            rs = await asyncio.gather(
                *(
                    client.post(
                        "/v1/completions",
                        json={"model": "sim", "prompt": p, "max_tokens": max_tokens, "seed": 1},
                    )
                    for p in prompts
                )
            )
            assert all(r.status_code == 200 for r in rs)
            return time.perf_counter() - began

    distinct = [f"{i} " + QUESTION * 2 for i in range(4)]  # ~200 uncached tokens each
    with SimServer(
        base_latency_s=0.0,
        per_token_latency_s=0.0,
        prefill_latency_per_token_s=0.001,
        batching="continuous",
    ) as sim:
        serial = asyncio.run(burst(sim.url, distinct, 4))
    with SimServer(
        base_latency_s=0.0, per_token_latency_s=0.0, prefill_latency_per_token_s=0.001
    ) as sim:
        parallel = asyncio.run(burst(sim.url, distinct, 4))
    # ~140 tokens each: 0.14 s apiece at once, 0.56 s one after another.
    assert serial >= 0.5 and serial > 2 * parallel, (serial, parallel)
    with SimServer(
        base_latency_s=0.0, per_token_latency_s=0.002, batching="continuous", decode_slowdown=0.5
    ) as sim:
        alone = asyncio.run(burst(sim.url, [QUESTION], 40))
        crowd = asyncio.run(burst(sim.url, [QUESTION] * 8, 40))
    assert crowd > 2 * alone, (crowd, alone)
