"""Server profiles: the simulator answers as vLLM, SGLang and llama.cpp do (probe routes,
missing routes, ``n`` refusals, seed sharing, prefill echo, usage of one choice)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.sim.conftest import FAST
from ttc_sim.runner import SimServer
from ttc_sim.tasks import synthetic_problems

_PROBLEM = synthetic_problems(1, seed=3)[0]
QUESTION = _PROBLEM.question
STEP = _PROBLEM.steps[0]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SimServer]]:
    names = ("generic", "vllm", "sglang", "llamacpp", "llamacpp_old")
    started = {name: SimServer(FAST, server=name).start() for name in names}
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


def _get(server: SimServer, path: str) -> httpx.Response:
    return httpx.get(server.url + path, timeout=10)


def _chat(server: SimServer, **body: object) -> httpx.Response:
    payload = {"model": "sim-gsm8k", "messages": [{"role": "user", "content": QUESTION}]}
    return httpx.post(server.base_url + "/chat/completions", json={**payload, **body}, timeout=10)


@pytest.mark.parametrize(
    ("name", "present", "absent"),
    [
        ("generic", [], ["/version", "/props", "/get_server_info"]),
        ("vllm", ["/version"], ["/props", "/get_server_info"]),
        ("sglang", ["/get_server_info", "/get_model_info"], ["/version", "/props"]),
        ("llamacpp", ["/props"], ["/version", "/get_server_info"]),
    ],
)
def test_probe_routes(
    servers: dict[str, SimServer], name: str, present: list[str], absent: list[str]
) -> None:
    server = servers[name]
    for path in present:
        assert _get(server, path).status_code == 200, path
    for path in absent:
        assert _get(server, path).status_code == 404, path


def test_probe_bodies(servers: dict[str, SimServer]) -> None:
    assert _get(servers["vllm"], "/version").json() == {"version": "0.32.0"}
    props = _get(servers["llamacpp"], "/props").json()
    assert props["total_slots"] == 4 and "default_generation_settings" in props
    info = _get(servers["sglang"], "/get_server_info").json()
    assert "version" in info and "model_path" in info
    owners = {
        name: _get(servers[name], "/v1/models").json()["data"][0]["owned_by"]
        for name in ("vllm", "sglang", "llamacpp")
    }
    assert owners == {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llamacpp"}


def test_sglang_has_no_pooling_and_llamacpp_no_reward_routes(
    servers: dict[str, SimServer],
) -> None:
    body = {"model": "sim-prm", "input": "q<extra_0>"}
    assert httpx.post(servers["vllm"].url + "/pooling", json=body).status_code == 200
    assert httpx.post(servers["sglang"].url + "/pooling", json=body).status_code == 404
    assert httpx.post(servers["llamacpp"].url + "/pooling", json=body).status_code == 404
    classify = {"model": "sim-rm", "input": ["q a"]}
    assert httpx.post(servers["llamacpp"].url + "/classify", json=classify).status_code == 404


def test_llamacpp_caps_n_at_parallel_with_its_400(servers: dict[str, SimServer]) -> None:
    ok = _chat(servers["llamacpp"], n=4, seed=1, max_tokens=20)
    assert ok.status_code == 200 and len(ok.json()["choices"]) == 4
    refused = _chat(servers["llamacpp"], n=16, seed=1)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": {
            "code": 400,
            "message": "Field 'n': Value must be between 1 <= value <= 4, but got 16",
            "type": "invalid_request_error",
        }
    }


def test_old_llamacpp_answers_any_n_with_a_500(servers: dict[str, SimServer]) -> None:
    refused = _chat(servers["llamacpp_old"], n=2)
    assert refused.status_code == 500
    assert refused.json()["error"]["message"] == "Only one completion choice is allowed"
    assert "param" not in refused.json()["error"]
    assert _chat(servers["llamacpp_old"], n=1).status_code == 200


def test_llamacpp_usage_counts_one_choice(servers: dict[str, SimServer]) -> None:
    server = servers["llamacpp"]
    server.reset_metrics()
    resp = _chat(server, n=4, seed=1, max_tokens=20).json()
    assert resp["usage"]["completion_tokens"] == 20  # each choice was cut at 20 tokens
    assert server.metrics["completion_tokens_total"] == 80  # what it really generated


def test_llamacpp_echoes_the_prefill(servers: dict[str, SimServer]) -> None:
    messages = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": STEP + "\n\n"},
    ]
    flags = {"continue_final_message": True, "add_generation_prompt": False, "seed": 2}
    generic = _chat(servers["generic"], messages=messages, **flags).json()
    echoed = _chat(servers["llamacpp"], messages=messages, **flags).json()
    new = generic["choices"][0]["message"]["content"]
    assert echoed["choices"][0]["message"]["content"] == messages[1]["content"] + new


def test_sglang_shares_one_seed_among_n(servers: dict[str, SimServer]) -> None:
    shared = _chat(servers["sglang"], n=8, seed=5, max_tokens=200).json()
    texts = {c["message"]["content"] for c in shared["choices"]}
    assert len(texts) == 1  # deterministic inference and one seed: 8 copies
    vllm = _chat(servers["vllm"], n=8, seed=5, max_tokens=200).json()
    assert len({c["message"]["content"] for c in vllm["choices"]}) > 1


def test_profiles_work_per_request(client: httpx.Client) -> None:
    body = {
        "model": "sim-gsm8k;server=llamacpp",
        "messages": [{"role": "user", "content": QUESTION}],
        "n": 5,
    }
    assert client.post("/v1/chat/completions", json=body).status_code == 400


def test_context_length_400s_in_vllms_words(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    long_prompt = {"model": "sim-gsm8k;max_model_len=5", "messages": messages}
    resp = client.post("/v1/chat/completions", json=long_prompt)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "BadRequestError" and error["param"] == "input_tokens"
    assert error["message"].startswith("This model's maximum context length is 5 tokens. ")
    assert "your prompt contains" in error["message"]
    too_much = {"model": "sim-gsm8k;max_model_len=100", "messages": messages, "max_tokens": 500}
    resp = client.post("/v1/chat/completions", json=too_much)
    assert resp.status_code == 400
    message = resp.json()["error"]["message"]
    assert message.startswith("This model's maximum context length is 100 tokens. However, you")
    assert "500 in the completion" in message
    fits = {"model": "sim-gsm8k;max_model_len=1000", "messages": messages, "max_tokens": 50}
    assert client.post("/v1/chat/completions", json=fits).status_code == 200
