"""Retries against a faulty simulated server (500, 429 with Retry-After, malformed bodies,
connection resets, hangs past the timeout), and 4xx rejections that must not be retried."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.core.inference._support import (
    endpoint,
    fault_seed_for,
    generate_one,
    request,
    sim_config,
    status_count,
    texts,
    with_client,
)
from ttc_core.errors import InferenceError, RejectedRequestError, RetryableInferenceError
from ttc_core.inference import retry
from ttc_core.inference.client import Generation, InferenceClient
from ttc_sim.runner import SimServer

CHAT = "/v1/chat/completions"


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exponential backoff of at most a few ms (Retry-After is still honoured as sent)."""
    monkeypatch.setattr(retry, "BASE_DELAY_S", 0.002)


@pytest.mark.usefixtures("fast_backoff")
def test_500s_and_429s_are_retried_to_the_same_results(clean_sim: SimServer) -> None:
    reference = generate_one(endpoint(clean_sim, max_n_per_request=2), request(16, seed=42))
    knobs = sim_config(fail_500_rate=0.3, fail_429_rate=0.3, retry_after_s=0.01, fault_seed=11)
    with SimServer(knobs) as sim:
        gen = generate_one(endpoint(sim, max_n_per_request=2, max_retries=20), request(16, seed=42))
        m = sim.metrics
    assert texts(gen) == texts(reference)
    assert [c.seed for c in gen.choices] == list(range(42, 58))
    assert gen.requests == 8  # successful requests; failed attempts are not counted
    assert m["faults"].get("500", 0) >= 1 and m["faults"].get("429", 0) >= 1
    assert m["requests_total"] == 8 + m["faults"]["500"] + m["faults"]["429"]
    assert status_count(m, CHAT, 200) == 8
    # usage is shared out of the successful responses only, as the server counts it
    assert sum(c.completion_tokens for c in gen.choices) == m["completion_tokens_total"]
    assert sum(c.prompt_tokens for c in gen.choices) == m["prompt_tokens_total"]


def test_no_retries_raises_retryable_500() -> None:
    with SimServer(sim_config(fail_500_rate=1.0)) as sim:
        with pytest.raises(RetryableInferenceError) as info:
            generate_one(endpoint(sim, max_retries=0), request(4))
        assert info.value.status == 500
        assert sim.metrics["requests_total"] == 1


@pytest.mark.usefixtures("fast_backoff")
def test_retries_are_bounded_by_max_retries() -> None:
    with SimServer(sim_config(fail_500_rate=1.0)) as sim:
        with pytest.raises(RetryableInferenceError):
            generate_one(endpoint(sim, max_retries=3), request(1))
        assert sim.metrics["requests_total"] == 4


def test_429_retry_after_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    # without Retry-After the backoff would be 0 s: any wait comes from the header
    monkeypatch.setattr(retry, "BASE_DELAY_S", 0.0)
    with SimServer(sim_config(fail_429_rate=1.0, retry_after_s=0.1)) as sim:
        began = time.perf_counter()
        with pytest.raises(RetryableInferenceError) as info:
            generate_one(endpoint(sim, max_retries=2), request(1))
        elapsed = time.perf_counter() - began
        assert info.value.status == 429
        assert info.value.retry_after == pytest.approx(0.1)
        assert sim.metrics["requests_total"] == 3
    assert 0.2 <= elapsed < 2.0


def test_429_then_success_waits_retry_after(clean_sim: SimServer) -> None:
    reference = generate_one(endpoint(clean_sim), request(4, seed=5))
    seed = fault_seed_for(0.5, "F.")  # first request: 429; second: answered
    with SimServer(sim_config(fail_429_rate=0.5, retry_after_s=0.05, fault_seed=seed)) as sim:
        began = time.perf_counter()
        gen = generate_one(endpoint(sim), request(4, seed=5))
        elapsed = time.perf_counter() - began
        assert sim.metrics["faults"] == {"429": 1}
        assert status_count(sim.metrics, CHAT, 429) == 1
    assert texts(gen) == texts(reference)
    assert gen.requests == 1
    assert elapsed >= 0.05


@pytest.mark.usefixtures("fast_backoff")
@pytest.mark.parametrize("kind", ["malformed", "reset"])
def test_malformed_bodies_and_resets_are_retried(clean_sim: SimServer, kind: str) -> None:
    reference = generate_one(endpoint(clean_sim, max_n_per_request=2), request(12, seed=8))
    with SimServer(sim_config(**{f"{kind}_rate": 0.5, "fault_seed": 4})) as sim:
        gen = generate_one(endpoint(sim, max_n_per_request=2, max_retries=20), request(12, seed=8))
        faults = sim.metrics["faults"]
    assert faults.get(kind, 0) >= 1
    assert texts(gen) == texts(reference)
    assert gen.requests == 6


@pytest.mark.parametrize("kind", ["malformed", "reset"])
def test_malformed_and_reset_without_retries_raise_retryable(kind: str) -> None:
    with SimServer(sim_config(**{f"{kind}_rate": 1.0})) as sim:
        with pytest.raises(RetryableInferenceError) as info:
            generate_one(endpoint(sim, max_retries=0), request(2))
        assert sim.metrics["requests_total"] == 1
    if kind == "malformed":
        assert "malformed" in str(info.value)
    else:
        assert isinstance(info.value.__cause__, httpx.TransportError)


def test_hang_past_timeout_is_a_retryable_timeout() -> None:
    with SimServer(sim_config(hang_rate=1.0, hang_s=2.0)) as sim:
        began = time.perf_counter()
        with pytest.raises(RetryableInferenceError) as info:
            generate_one(endpoint(sim, timeout_s=0.3, max_retries=0), request(2))
        elapsed = time.perf_counter() - began
    assert "timeout" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.TimeoutException)
    assert 0.3 <= elapsed < 1.5


@pytest.mark.usefixtures("fast_backoff")
def test_hang_then_retry_succeeds(clean_sim: SimServer) -> None:
    reference = generate_one(endpoint(clean_sim), request(3, seed=21))
    seed = fault_seed_for(0.5, "F.")
    with SimServer(sim_config(hang_rate=0.5, hang_s=2.0, fault_seed=seed)) as sim:
        began = time.perf_counter()
        gen = generate_one(endpoint(sim, timeout_s=0.3, max_retries=2), request(3, seed=21))
        elapsed = time.perf_counter() - began
        assert sim.metrics["faults"] == {"hang": 1}
    assert texts(gen) == texts(reference)
    assert 0.3 <= elapsed < 1.5


# ----------------------------------------------------------------------------- 4xx


def test_4xx_is_rejected_without_retries() -> None:
    with SimServer(sim_config()) as sim:
        ep = endpoint(sim, model="sim-gsm8k;bogus=1", max_retries=5)
        with pytest.raises(RejectedRequestError) as info:
            generate_one(ep, request(1))
        assert not isinstance(info.value, RetryableInferenceError)
        assert isinstance(info.value, InferenceError)
        assert info.value.status == 400
        assert "bogus" in str(info.value)
        assert sim.metrics["requests_total"] == 1


def test_4xx_other_than_n_rejection_is_not_resent_for_n_gt_1() -> None:
    with SimServer(sim_config()) as sim:
        ep = endpoint(sim, model="sim-gsm8k;bogus=1", max_retries=5)
        with pytest.raises(RejectedRequestError):
            generate_one(ep, request(4))
        # one request, like n=1; the client currently sends 1 + 4
        assert sim.metrics["requests_total"] == 1


def test_one_bad_request_does_not_turn_off_n() -> None:
    with SimServer(sim_config()) as sim:

        async def scenario(client: InferenceClient) -> Generation:
            with pytest.raises(RejectedRequestError):
                await client.generate(request(4, temperature=3.0))  # a 400 for temperature
            sim.reset_metrics()
            return await client.generate(request(4))

        gen = asyncio.run(with_client(endpoint(sim), scenario))
        assert gen.requests == 1  # one n=4 request; the client currently sends four n=1
        assert sim.metrics["requests_total"] == 1
