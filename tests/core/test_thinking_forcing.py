"""The budget-forcing loop against the simulated model over real HTTP, on both APIs.

With fixed-length segments (``think_length_cv=0``) the number of forced "Wait"s is known
in advance: a minimum of M tokens over segments of S tokens takes ceil(M / S) - 1 of them.
The cap is checked against what the server counted (its usage and its own metrics).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import httpx
import pytest

from ttc_core.engine.thinking import Conversation, ThinkingSpec, Thought, force_thought
from ttc_core.inference import InferenceClient, LocalLimiter
from ttc_core.settings import EndpointConfig
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems

PROBLEM = gsm8k_problems()[7]
CONVO = Conversation([{"role": "user", "content": PROBLEM.question}], PROBLEM.question)
SEGMENT = 50


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(SimConfig(base_latency_s=0.001, per_token_latency_s=0.0)) as server:
        yield server


def think(
    sim: SimServer, api: str, spec: ThinkingSpec, cap: int, *, model: str, seed: int = 5
) -> Thought:
    endpoint = EndpointConfig(base_url=sim.base_url, model=model, api=api, timeout_s=10)

    async def go() -> Thought:
        async with httpx.AsyncClient() as http:
            client = InferenceClient("sim", endpoint, http, LocalLimiter())
            return await force_thought(
                client, CONVO, spec, cap, seed=seed, temperature=0.8, top_p=1.0
            )

    return asyncio.run(go())


FIXED = f"sim-gsm8k;think_length_cv=0;think_mean_tokens={SEGMENT}"


@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("min_tokens", [0, 50, 51, 120, 260])
def test_minimum_forces_wait_the_right_number_of_times(
    sim: SimServer, api: str, min_tokens: int
) -> None:
    sim.reset_metrics()
    thought = think(sim, api, ThinkingSpec(min_tokens=min_tokens), 10_000, model=FIXED)
    forcings = max(0, math.ceil(min_tokens / SEGMENT) - 1)
    assert thought.forcings == forcings
    assert thought.text.count(" Wait, ") == forcings
    assert thought.tokens == (forcings + 1) * SEGMENT >= min_tokens
    assert thought.requests == forcings + 1 == sim.metrics["requests_total"]
    assert thought.closed_by == "model"
    # the thinking tokens are exactly what the server generated and counted
    assert sim.metrics["completion_tokens_total"] == thought.tokens


def test_forcings_are_bounded(sim: SimServer) -> None:
    spec = ThinkingSpec(min_tokens=1_000, max_forcings=2)
    thought = think(sim, "chat", spec, 10_000, model=FIXED)
    assert (thought.forcings, thought.tokens, thought.closed_by) == (2, 150, "forcings")


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_cap_closes_a_long_thought(sim: SimServer, api: str) -> None:
    sim.reset_metrics()
    long = "sim-gsm8k;think_length_cv=0;think_mean_tokens=300"
    thought = think(sim, api, ThinkingSpec(), 120, model=long)
    assert (thought.tokens, thought.closed_by, thought.finish_reason) == (120, "cap", "length")
    assert sim.metrics["completion_tokens_total"] == 120


def test_cap_wins_over_the_minimum_mid_forcing(sim: SimServer) -> None:
    # 50 + 50 tokens, then only 20 are left: the third round is cut there.
    sim.reset_metrics()
    thought = think(sim, "chat", ThinkingSpec(min_tokens=120), 120, model=FIXED)
    assert (thought.tokens, thought.forcings, thought.closed_by) == (120, 2, "cap")
    assert sim.metrics["completion_tokens_total"] == 120


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_random_lengths_never_exceed_the_cap(sim: SimServer, api: str) -> None:
    spec = ThinkingSpec(min_tokens=300, max_forcings=20)
    sim.reset_metrics()
    thoughts = [
        think(sim, api, spec, 500, model="sim-gsm8k;think_length_cv=0.8", seed=s) for s in range(25)
    ]
    assert all(t.tokens <= 500 for t in thoughts)
    assert all(t.tokens >= 300 for t in thoughts)
    assert {t.closed_by for t in thoughts} <= {"model", "cap"}
    assert "cap" in {t.closed_by for t in thoughts}  # some thoughts ran into it
    assert sum(t.tokens for t in thoughts) == sim.metrics["completion_tokens_total"]
