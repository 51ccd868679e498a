"""Hostile output modes: NUL, lone surrogates, bytes that are not UTF-8, garbage text and
corrupted usage, on the wire exactly as a client reads them."""

from __future__ import annotations

import json

import httpx
import pytest

from ttc_sim.tasks import synthetic_problems

QUESTION = synthetic_problems(1, seed=3)[0].question


def _post(client: httpx.Client, model: str, **body: object) -> httpx.Response:
    payload = {"model": model, "prompt": QUESTION, "seed": 1, "max_tokens": 64, **body}
    return client.post("/v1/completions", json=payload)


def test_nul_and_surrogates_arrive_as_json_escapes(client: httpx.Client) -> None:
    resp = _post(client, "sim-gsm8k;output_nul=3;output_surrogates=2")
    assert resp.status_code == 200
    assert b"\\u0000" in resp.content and b"\\ud" in resp.content
    text = json.loads(resp.content)["choices"][0]["text"]
    assert text.count("\x00") == 3
    assert sum(0xD800 <= ord(ch) <= 0xDFFF for ch in text) == 2


def test_invalid_utf8_bytes_are_raw_on_the_wire(client: httpx.Client) -> None:
    resp = _post(client, "sim-gsm8k;output_invalid_utf8=4")
    assert resp.content.count(b"\xff") == 4
    with pytest.raises(UnicodeDecodeError):
        resp.content.decode("utf-8")
    text = json.loads(resp.content.decode("utf-8", "replace"))["choices"][0]["text"]
    assert text.count("\ufffd") == 4


def test_corruption_keeps_the_usage_and_the_token_count(client: httpx.Client) -> None:
    clean = _post(client, "sim-gsm8k").json()
    dirty = json.loads(_post(client, "sim-gsm8k;output_nul=5").content)
    assert dirty["usage"] == clean["usage"]
    assert dirty["choices"][0]["text"].replace("\x00", "") == clean["choices"][0]["text"]


def test_garbage_text_is_what_a_random_model_writes(client: httpx.Client) -> None:
    resp = _post(client, "sim-gsm8k;garbage_rate=1", max_tokens=200)
    body = json.loads(resp.content.decode("utf-8", "replace"))
    text = body["choices"][0]["text"]
    assert "ANSWER" not in text
    assert any(ch in text for ch in "\x00\x01\x07\x1b\ufffd")
    assert body["usage"]["completion_tokens"] == 200
    assert body["choices"][0]["finish_reason"] == "length"


def test_garbage_judges_too(client: httpx.Client) -> None:
    """A value prompt answered by a garbage model has no value word in it."""
    from ttc_core.search.prompts import value_prompt

    prompt = value_prompt(QUESTION, ["step one"])
    resp = _post(client, "sim-gsm8k;garbage_rate=1", prompt=prompt, max_tokens=8, n=3)
    texts = [c["text"] for c in json.loads(resp.content.decode("utf-8", "replace"))["choices"]]
    assert not any(word in t.lower() for t in texts for word in ("sure", "likely", "impossible"))


@pytest.mark.parametrize(
    ("style", "check"),
    [
        ("negative", lambda u, real: u["completion_tokens"] < 0),
        ("missing", lambda u, real: u is None),
        ("float", lambda u, real: u["completion_tokens"] == real + 0.5),
        ("string", lambda u, real: u["completion_tokens"] == f"{real} tokens"),
        ("bool", lambda u, real: u["completion_tokens"] is True),
        ("huge", lambda u, real: u["completion_tokens"] > 10**14),
    ],
)
def test_usage_styles(client: httpx.Client, style: str, check: object) -> None:
    real = _post(client, "sim-gsm8k").json()["usage"]["completion_tokens"]
    sent = _post(client, f"sim-gsm8k;usage_style={style}").json().get("usage")
    assert check(sent, real)  # type: ignore[operator]


def test_metrics_count_the_real_tokens_whatever_usage_says(client: httpx.Client) -> None:
    client.post("/metrics/reset")
    real = _post(client, "sim-gsm8k").json()["usage"]["completion_tokens"]
    _post(client, "sim-gsm8k;usage_style=negative")
    assert client.get("/metrics").json()["completion_tokens_total"] == 2 * real


def test_streams_carry_the_hostile_text_too(client: httpx.Client) -> None:
    resp = _post(
        client,
        "sim-gsm8k;output_nul=2;output_invalid_utf8=1",
        stream=True,
        stream_options={"include_usage": True},
    )
    assert resp.content.count(b"\xff") == 1
    assert resp.content.count(b"\\u0000") == 2
