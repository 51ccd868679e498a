from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from ttc_sim.config import SimConfig
from ttc_sim.model import generate
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems, synthetic_problems
from ttc_sim.tokens import count_tokens

P = gsm8k_problems()[4]


def _complete(client: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("model", "sim-gsm8k")
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def _chat(client: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("model", "sim-gsm8k")
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_completion_shape(client: httpx.Client) -> None:
    data = _complete(client, prompt=P.question + "\n\n", n=3, seed=5)
    assert data["object"] == "text_completion" and data["id"].startswith("cmpl-")
    assert data["model"] == "sim-gsm8k" and isinstance(data["created"], int)
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    for i, c in enumerate(data["choices"]):
        assert c["finish_reason"] == "stop"
        assert c["text"] == generate(P, 5 + i, SimConfig()).text
    use = data["usage"]
    assert use["prompt_tokens"] == count_tokens(P.question + "\n\n")
    assert use["completion_tokens"] == sum(count_tokens(c["text"]) for c in data["choices"])
    assert use["total_tokens"] == use["prompt_tokens"] + use["completion_tokens"]


def test_chat_shape(client: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "Solve step by step."},
        {"role": "user", "content": P.question},
    ]
    data = _chat(client, messages=messages, n=2, seed=1)
    assert data["object"] == "chat.completion" and data["id"].startswith("chatcmpl-")
    for i, c in enumerate(data["choices"]):
        assert c["message"]["role"] == "assistant"
        assert c["message"]["content"] == generate(P, 1 + i, SimConfig()).text
        assert c["finish_reason"] == "stop" and c["index"] == i
    parts = _chat(
        client,
        messages=[{"role": "user", "content": [{"type": "text", "text": P.question}]}],
        seed=1,
    )
    assert parts["choices"][0]["message"]["content"] == data["choices"][0]["message"]["content"]


def test_n_equals_separate_seeded_requests(client: httpx.Client) -> None:
    q = synthetic_problems(1, seed=8)[0].question
    model = "sim-synthetic;step_accuracy=0.5"
    batch = _complete(client, model=model, prompt=q, n=4, seed=100)
    singles = [
        _complete(client, model=model, prompt=q, n=1, seed=100 + i)["choices"][0]["text"]
        for i in range(4)
    ]
    assert [c["text"] for c in batch["choices"]] == singles
    chat = _chat(client, model=model, messages=[{"role": "user", "content": q}], n=4, seed=100)
    assert [c["message"]["content"] for c in chat["choices"]] == singles


def test_unseeded_and_greedy(client: httpx.Client) -> None:
    model = "sim;sample_accuracy=0.5"
    texts = {c["text"] for c in _complete(client, model=model, prompt=P.question, n=20)["choices"]}
    assert len(texts) > 1
    greedy = _complete(client, model=model, prompt=P.question, n=3, temperature=0)["choices"]
    assert len({c["text"] for c in greedy}) == 1


def test_stop_and_stepwise_generation(client: httpx.Client) -> None:
    prompt = P.question + "\n\n"
    whole = generate(P, 9, SimConfig()).text
    built = ""
    for _ in range(10):
        c = _complete(client, prompt=prompt + built, seed=9, stop=["\n\n"])["choices"][0]
        assert c["finish_reason"] == "stop"
        assert "\n\n" not in c["text"]
        built += c["text"]
        if "ANSWER:" in c["text"]:
            break
        assert c["stop_reason"] == "\n\n"
        built += "\n\n"
    assert built == whole
    inc = _complete(client, prompt=prompt, seed=9, stop="\n\n", include_stop_str_in_output=True)
    assert inc["choices"][0]["text"] == whole.split("\n\n")[0] + "\n\n"


def test_chat_continues_final_assistant_message(client: httpx.Client) -> None:
    whole = generate(P, 4, SimConfig()).text
    first = whole.split("\n\n")[0] + "\n\n"
    messages = [
        {"role": "user", "content": P.question},
        {"role": "assistant", "content": first},
    ]
    data = _chat(client, messages=messages, seed=4)
    assert first + data["choices"][0]["message"]["content"] == whole


def test_max_tokens_gives_length(client: httpx.Client) -> None:
    data = _complete(client, prompt=P.question, seed=1, max_tokens=7, n=2)
    for c in data["choices"]:
        assert c["finish_reason"] == "length" and count_tokens(c["text"]) == 7
    assert data["usage"]["completion_tokens"] == 14
    chat = _chat(
        client, messages=[{"role": "user", "content": P.question}], max_completion_tokens=5
    )
    assert chat["choices"][0]["finish_reason"] == "length"
    assert chat["usage"]["completion_tokens"] == 5


def test_logprobs(client: httpx.Client) -> None:
    c = _complete(client, prompt=P.question, seed=2, logprobs=1)["choices"][0]
    lp = c["logprobs"]
    assert "".join(lp["tokens"]) == c["text"]
    assert len(lp["token_logprobs"]) == len(lp["tokens"]) == len(lp["top_logprobs"])
    assert all(x <= 0 for x in lp["token_logprobs"])
    msg = [{"role": "user", "content": P.question}]
    chat = _chat(client, messages=msg, seed=2, logprobs=True, top_logprobs=2)["choices"][0]
    content = chat["logprobs"]["content"]
    assert "".join(t["token"] for t in content) == chat["message"]["content"]
    assert all(t["logprob"] <= 0 and t["top_logprobs"] for t in content)
    plain = _complete(client, prompt=P.question, seed=2)["choices"][0]
    assert plain["logprobs"] is None


def _sse(text: str) -> list[Any]:
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: ")
        payload = block[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


@pytest.mark.parametrize("kind", ["completions", "chat"])
def test_streaming_reassembles(client: httpx.Client, kind: str) -> None:
    base: dict[str, Any] = {"model": "sim-gsm8k", "n": 2, "seed": 3, "logprobs": True}
    if kind == "chat":
        base["messages"] = [{"role": "user", "content": P.question}]
        url = "/v1/chat/completions"
    else:
        base["prompt"] = P.question
        base["logprobs"] = 0
        url = "/v1/completions"
    plain = client.post(url, json=base).json()
    with client.stream(
        "POST", url, json={**base, "stream": True, "stream_options": {"include_usage": True}}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    events = _sse(body)
    assert events[-1] == "[DONE]"
    usage = events[-2]["usage"]
    assert usage == plain["usage"]
    texts = ["", ""]
    finish = [None, None]
    deltas = 0
    for ev in events[:-2]:
        assert ev["id"] == events[0]["id"]
        for ch in ev["choices"]:
            piece = ch["delta"].get("content", "") if kind == "chat" else ch["text"]
            texts[ch["index"]] += piece
            deltas += bool(piece)
            if ch["finish_reason"]:
                finish[ch["index"]] = ch["finish_reason"]
    expected = [c["message"]["content"] if kind == "chat" else c["text"] for c in plain["choices"]]
    assert texts == expected
    assert finish == ["stop", "stop"]
    assert deltas == usage["completion_tokens"]  # one token per delta


def test_usage_equals_metrics() -> None:
    with (
        SimServer(base_latency_s=0.001, per_token_latency_s=0) as sim,
        httpx.Client(base_url=sim.base_url) as c,
    ):
        totals = {"prompt_tokens": 0, "completion_tokens": 0}
        bodies = [
            ("/completions", {"prompt": P.question, "n": 3, "seed": 1}),
            ("/completions", {"prompt": [P.question, "hello"], "n": 2, "max_tokens": 9}),
            ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2}),
            (
                "/chat/completions",
                {"messages": [{"role": "user", "content": "hi"}], "stream": True},
            ),
        ]
        choices = 0
        for url, body in bodies:
            r = c.post(
                url, json={"model": "sim", **body, "stream_options": {"include_usage": True}}
            )
            assert r.status_code == 200
            if body.get("stream"):
                use = _sse(r.text)[-2]["usage"]
                choices += 1
            else:
                use = r.json()["usage"]
                choices += len(r.json()["choices"])
            for k in totals:
                totals[k] += use[k]
        # a stream's last bytes can reach the client just before the server books the request
        deadline = time.monotonic() + 2
        while sim.metrics["requests_total"] < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        m = c.get(sim.url + "/metrics").json()
        assert m["prompt_tokens_total"] == totals["prompt_tokens"]
        assert m["completion_tokens_total"] == totals["completion_tokens"]
        assert m["choices_total"] == choices == 3 + 4 + 2 + 1
        assert m["requests"]["/v1/completions"]["200"] == 2
        assert m["requests_total"] == 4  # generation requests only
        assert c.get(sim.url + "/health").status_code == 200
        m = c.get(sim.url + "/metrics").json()
        assert m["requests_total"] == 4 and m["http_requests_total"] == 6
        assert m["in_flight_requests"] == 0 and m["in_flight_sequences"] == 0
        prom = c.get(sim.url + "/metrics", params={"format": "prometheus"}).text
        assert f"ttc_sim_completion_tokens_total {totals['completion_tokens']}" in prom
        assert c.post(sim.url + "/metrics/reset").status_code == 200
        assert c.get(sim.url + "/metrics").json()["choices_total"] == 0
        c.post("/completions", json={"model": "sim", "prompt": "x"})
        assert sim.metrics["requests_total"] == 1
        sim.reset_metrics()
        assert sim.metrics["requests_total"] == 0 and sim.metrics["choices_total"] == 0


def test_models_health_and_errors(client: httpx.Client) -> None:
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert "sim-gsm8k" in [m["id"] for m in models["data"]]
    assert client.get("/health").status_code == 200
    cases = [
        ("/v1/completions", {"model": "sim"}, "prompt"),
        ("/v1/completions", {"model": "sim", "prompt": "x", "n": 0}, "n"),
        ("/v1/completions", {"model": "sim", "prompt": "x", "max_tokens": "5"}, "max_tokens"),
        ("/v1/completions", {"model": "sim;bogus=1", "prompt": "x"}, "model"),
        ("/v1/completions", {"model": "sim", "prompt": [1, 2, 3]}, "prompt"),
        ("/v1/chat/completions", {"model": "sim", "messages": []}, "messages"),
        ("/v1/chat/completions", {"model": "sim", "messages": "hi"}, "messages"),
        ("/v1/completions", {"model": "sim", "prompt": "x", "temperature": 5}, "temperature"),
    ]
    for url, body, param in cases:
        r = client.post(url, json=body)
        assert r.status_code == 400, (body, r.text)
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert err["param"] == param and err["message"]
    bad_json = client.post("/v1/completions", content=b"{nope", headers={"content-type": "x"})
    assert bad_json.status_code == 400 and "error" in bad_json.json()
    missing = client.get("/v2/nothing")
    assert missing.status_code == 404 and "error" in missing.json()
    assert client.get("/v1/completions").status_code == 405


def test_reject_n(client: httpx.Client) -> None:
    r = client.post("/v1/completions", json={"model": "sim;reject_n=true", "prompt": "x", "n": 2})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "n" and err["type"] == "invalid_request_error"
    one = client.post("/v1/completions", json={"model": "sim;reject_n=true", "prompt": "x"})
    assert one.status_code == 200


def test_classify_and_reward(client: httpx.Client) -> None:
    good = P.question + "\n\n" + generate(P, 0, SimConfig(step_accuracy=1.0)).text
    bad = P.question + "\n\nThe final answer is $\\boxed{1}$.\nANSWER: 1"
    r = client.post("/classify", json={"model": "sim-rm;reward_noise=0", "input": [good, bad]})
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "list" and data["model"] == "sim-rm;reward_noise=0"
    assert data["usage"]["prompt_tokens"] == count_tokens(good) + count_tokens(bad)
    assert [d["index"] for d in data["data"]] == [0, 1]
    for d in data["data"]:
        assert d["num_classes"] == 2 and len(d["probs"]) == 2
        assert abs(sum(d["probs"]) - 1) < 1e-9
    assert data["data"][0]["label"] == "good" and data["data"][0]["probs"][1] > 0.85
    assert data["data"][1]["label"] == "bad" and data["data"][1]["probs"][1] < 0.15
    single = client.post("/classify", json={"model": "sim-rm", "input": good}).json()
    assert len(single["data"]) == 1
    scores = client.post(
        "/v1/reward",
        json={"model": "sim-rm;reward_noise=0", "prompt": P.question, "responses": [good, bad]},
    ).json()["scores"]
    assert scores[0] > 0.85 and scores[1] < 0.15
    assert client.post("/classify", json={"input": 3}).status_code == 400
