from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from ttc_sim.runner import SimServer


def test_500_has_error_body(client: httpx.Client) -> None:
    r = client.post("/v1/completions", json={"model": "sim;fail_500_rate=1", "prompt": "x"})
    assert r.status_code == 500
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_429_has_retry_after(client: httpx.Client) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": "sim;fail_429_rate=1;retry_after_s=2",
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    r = client.post(
        "/classify", json={"model": "sim-rm;fail_429_rate=1;retry_after_s=0.5", "input": "x"}
    )
    assert r.status_code == 429 and r.headers["retry-after"] == "0.5"


def test_malformed_body(client: httpx.Client) -> None:
    r = client.post("/v1/completions", json={"model": "sim;malformed_rate=1", "prompt": "x"})
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()
    s = client.post(
        "/v1/completions", json={"model": "sim;malformed_rate=1", "prompt": "x", "stream": True}
    )
    assert s.status_code == 200 and "[DONE]" not in s.text
    with pytest.raises(json.JSONDecodeError):
        json.loads(s.text.split("data: ", 1)[1])


def test_reset_drops_the_connection(sim: SimServer, client: httpx.Client) -> None:
    before = sim.metrics["faults"].get("reset", 0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/v1/completions", json={"model": "sim;reset_rate=1", "prompt": "x"})
    assert sim.metrics["faults"]["reset"] == before + 1
    # the client recovers on a new connection
    assert client.post("/v1/completions", json={"model": "sim", "prompt": "x"}).status_code == 200


def test_hang_then_answer(client: httpx.Client) -> None:
    start = time.perf_counter()
    r = client.post("/v1/completions", json={"model": "sim;hang_rate=1;hang_s=0.3", "prompt": "x"})
    assert r.status_code == 200 and r.json()["choices"]
    assert time.perf_counter() - start >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/v1/completions",
            json={"model": "sim;hang_rate=1;hang_s=0.5", "prompt": "x"},
            timeout=0.1,
        )


def test_fault_sequence_is_deterministic() -> None:
    def statuses() -> list[int]:
        with (
            SimServer(base_latency_s=0, per_token_latency_s=0, fault_seed=7) as sim,
            httpx.Client(base_url=sim.base_url) as c,
        ):
            model = "sim;fail_500_rate=0.3;fail_429_rate=0.2;retry_after_s=0"
            return [
                c.post("/completions", json={"model": model, "prompt": "x"}).status_code
                for _ in range(40)
            ]

    first = statuses()
    assert first == statuses()
    assert {200, 429, 500} == set(first)
    assert 4 < first.count(500) < 22


def test_stop_ends_hangs_quickly() -> None:
    sim = SimServer(base_latency_s=0, hang_rate=1.0, hang_s=30).start()
    result: list[int] = []

    def call() -> None:
        with httpx.Client(base_url=sim.base_url, timeout=40) as c:
            result.append(c.post("/completions", json={"prompt": "x"}).status_code)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)
    start = time.perf_counter()
    sim.stop()
    t.join(10)
    assert time.perf_counter() - start < 5
    assert result == [200]
