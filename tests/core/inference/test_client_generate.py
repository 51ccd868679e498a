"""InferenceClient.generate against the simulated server over real HTTP: n split into
requests, order, seeds, usage shares, and the fallback for servers that reject ``n``."""

from __future__ import annotations

import math

import pytest

from tests.core.inference._support import (
    endpoint,
    generate,
    generate_one,
    request,
    sim_config,
    status_count,
    texts,
)
from ttc_sim.runner import SimServer

ROUTES = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("max_n", [16, 5, 1])
def test_n16_in_order_with_seeds_and_usage(clean_sim: SimServer, api: str, max_n: int) -> None:
    ep = endpoint(clean_sim, api=api, max_n_per_request=max_n)
    clean_sim.reset_metrics()
    gen = generate_one(ep, request(16, seed=1000, api=api))
    m = clean_sim.metrics

    assert [c.index for c in gen.choices] == list(range(16))
    assert [c.seed for c in gen.choices] == list(range(1000, 1016))
    assert all(c.text for c in gen.choices)
    assert all(c.finish_reason in ("stop", "length") for c in gen.choices)
    assert all(c.latency_ms > 0 for c in gen.choices)
    # the server saw the requests the client counts, on the route of the configured API
    assert gen.requests == math.ceil(16 / max_n) == m["requests_total"]
    assert status_count(m, ROUTES[api], 200) == gen.requests
    assert m["choices_total"] == 16
    # the usage shares add up to exactly what the server reported
    assert sum(c.prompt_tokens for c in gen.choices) == m["prompt_tokens_total"] > 0
    assert sum(c.completion_tokens for c in gen.choices) == m["completion_tokens_total"] > 0
    assert all(c.completion_tokens > 0 for c in gen.choices)

    # choice i is the sample of seed + i: the same text as a lone request with that seed
    one_by_one = generate(ep, *(request(1, seed=1000 + i, api=api) for i in range(16)))
    assert texts(gen) == [g.choices[0].text for g in one_by_one]


def test_samples_differ_across_seeds_and_repeat_for_a_seed(clean_sim: SimServer) -> None:
    ep = endpoint(clean_sim)
    a, b, c = generate(ep, request(8, seed=1), request(8, seed=1), request(8, seed=50))
    assert texts(a) == texts(b)
    assert texts(a) != texts(c)
    assert len(set(texts(a))) > 1


def test_completions_api_renders_chat_messages(clean_sim: SimServer) -> None:
    ep = endpoint(clean_sim, api="completions")
    clean_sim.reset_metrics()
    gen = generate_one(ep, request(4, seed=3, api="chat"))  # messages, no prompt
    assert len(gen.choices) == 4
    assert status_count(clean_sim.metrics, "/v1/completions", 200) == 1


def test_n_zero_sends_nothing(clean_sim: SimServer) -> None:
    clean_sim.reset_metrics()
    gen = generate_one(endpoint(clean_sim), request(0))
    assert gen.choices == [] and gen.requests == 0
    assert clean_sim.metrics["requests_total"] == 0


def test_fallback_when_server_rejects_n(clean_sim: SimServer) -> None:
    reference = generate_one(endpoint(clean_sim), request(16, seed=77))
    with SimServer(sim_config(reject_n=True)) as sim:
        ep = endpoint(sim)
        first, second = generate(ep, request(16, seed=77), request(8, seed=500))
        m = sim.metrics
        route = "/v1/chat/completions"

        assert texts(first) == texts(reference)
        assert [c.seed for c in first.choices] == list(range(77, 93))
        assert [c.index for c in first.choices] == list(range(16))
        assert first.requests == 16
        assert len(second.choices) == 8 and second.requests == 8
        assert [c.seed for c in second.choices] == list(range(500, 508))
        # one rejected n=16 request; the second generate went straight to n=1 requests
        assert status_count(m, route, 400) == 1
        assert status_count(m, route, 200) == 16 + 8
        assert m["requests_total"] == 1 + 16 + 8
        assert m["choices_total"] == 24
        assert (
            sum(c.completion_tokens for g in (first, second) for c in g.choices)
            == m["completion_tokens_total"]
        )


def test_fallback_with_several_chunks(clean_sim: SimServer) -> None:
    """n=20 in chunks of 8, 8, 4: each chunk is rejected once, then sent as n=1 requests."""
    reference = generate_one(endpoint(clean_sim), request(20, seed=9))
    with SimServer(sim_config(reject_n=True)) as sim:
        gen = generate_one(endpoint(sim, max_n_per_request=8), request(20, seed=9))
        m = sim.metrics
        assert texts(gen) == texts(reference)
        assert [c.index for c in gen.choices] == list(range(20))
        assert gen.requests == 20
        assert status_count(m, "/v1/chat/completions", 400) == 3
        assert status_count(m, "/v1/chat/completions", 200) == 20


def test_supports_n_false_never_sends_n(clean_sim: SimServer) -> None:
    with SimServer(sim_config(reject_n=True)) as sim:
        gen = generate_one(endpoint(sim, supports_n=False), request(6, seed=1))
        assert gen.requests == 6
        assert status_count(sim.metrics, "/v1/chat/completions", 400) == 0
