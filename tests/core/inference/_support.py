"""Helpers for the inference client tests: endpoints pointed at a SimServer, and running
``InferenceClient.generate`` inside ``asyncio.run`` with every client and limiter closed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ttc_core.inference.client import Generation, GenerationRequest, InferenceClient
from ttc_core.inference.limiter import ConcurrencyLimiter, LocalLimiter
from ttc_core.settings import EndpointConfig
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems

PROBLEM = gsm8k_problems()[4]
MESSAGES = [{"role": "user", "content": PROBLEM.question}]
PROMPT = PROBLEM.question + "\n\n"

#: Fast, fault-free simulated model; tests add their knobs on top.
FAST: dict[str, Any] = {"base_latency_s": 0.005, "per_token_latency_s": 0.0}


def sim_config(**knobs: Any) -> SimConfig:
    return SimConfig(**{**FAST, **knobs})


def endpoint(sim: SimServer, **fields: Any) -> EndpointConfig:
    values: dict[str, Any] = {
        "base_url": sim.base_url,
        "model": "sim-gsm8k",
        "timeout_s": 10.0,
        "max_retries": 3,
    }
    values.update(fields)
    return EndpointConfig(**values)


def request(n: int, seed: int | None = 1000, api: str = "chat", **fields: Any) -> GenerationRequest:
    if api == "chat":
        return GenerationRequest(n=n, messages=MESSAGES, seed=seed, **fields)
    return GenerationRequest(n=n, prompt=PROMPT, seed=seed, **fields)


Scenario = Callable[[InferenceClient], Awaitable[Any]]


async def with_client(
    ep: EndpointConfig,
    scenario: Scenario,
    limiter: ConcurrencyLimiter | None = None,
    name: str = "sim",
) -> Any:
    """Run ``scenario(client)`` with a fresh pooled httpx client (closed afterwards)."""
    async with httpx.AsyncClient() as http:
        client = InferenceClient(name, ep, http, limiter or LocalLimiter())
        return await scenario(client)


def generate(ep: EndpointConfig, *reqs: GenerationRequest) -> list[Generation]:
    """Each request in turn, on one client (so the client's memory carries over)."""

    async def scenario(client: InferenceClient) -> list[Generation]:
        return [await client.generate(r) for r in reqs]

    out: list[Generation] = asyncio.run(with_client(ep, scenario))
    return out


def generate_one(ep: EndpointConfig, req: GenerationRequest) -> Generation:
    return generate(ep, req)[0]


def texts(gen: Generation) -> list[str]:
    return [c.text for c in gen.choices]


def fault_seed_for(rate: float, pattern: str, search: int = 10_000) -> int:
    """A ``fault_seed`` whose first draws give faults (``F``) or not (``.``) in ``pattern``
    for a single fault kind of probability ``rate`` (the sim draws once per request)."""
    for seed in range(search):
        rng = random.Random(seed)
        if all((rng.random() < rate) == (p == "F") for p in pattern):
            return seed
    raise AssertionError(f"no fault seed gives {pattern!r}")


def status_count(metrics: dict[str, Any], route: str, status: int) -> int:
    return int(metrics["requests"].get(route, {}).get(str(status), 0))
