"""The simulated model's extended thinking: when it thinks, what a thought costs (honest
usage), how it continues after a forced "Wait", how it answers after a forced close, and
the accuracy curve p(L) it is told to follow."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from ttc_sim.config import SimConfig
from ttc_sim.model import generate
from ttc_sim.tasks import gsm8k_problems, synthetic_problems
from ttc_sim.thinking import (
    THINK_CLOSE,
    THINK_OPEN,
    accuracy_at,
    read_thought,
    segment,
    segment_length,
)
from ttc_sim.tokens import count_tokens

P = gsm8k_problems()[4]
FIXED = "sim-gsm8k;think_length_cv=0;think_mean_tokens=60"


def _chat(client: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("model", "sim-gsm8k")
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _complete(client: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("model", "sim-gsm8k")
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_thinks_only_when_asked() -> None:
    cfg = SimConfig()
    plain = generate(P, 3, cfg)
    assert THINK_OPEN not in plain.text
    asked = generate(P, 3, cfg, think=True)
    assert asked.text.startswith(THINK_OPEN + "\n") and THINK_CLOSE in asked.text
    always = generate(P, 3, cfg.model_copy(update={"think_always": True}))
    assert always.text == asked.text
    # the answer after the thought is an ordinary solution with a final answer
    answer = asked.text.split(THINK_CLOSE, 1)[1]
    assert "ANSWER:" in answer and THINK_OPEN not in answer


def test_read_thought() -> None:
    assert read_thought("\n\nNow: a step") is None
    assert read_thought("", start=True) == read_thought(THINK_OPEN)
    state = read_thought(f"\n{THINK_OPEN}\nabc Wait")
    assert state is not None and state.open and state.thought == "\nabc Wait"
    done = read_thought(f"{THINK_OPEN}\nabc{THINK_CLOSE}\n\nFinal: ")
    assert done is not None and not done.open
    assert (done.thought, done.after, done.tokens) == ("\nabc", "\n\nFinal: ", 1)


def test_segments_have_the_drawn_length_and_no_delimiters() -> None:
    cfg = SimConfig(think_length_cv=0.0, think_mean_tokens=37)
    for seed in range(20):
        assert segment_length(P, seed, 0, cfg) == 37
        text = segment(P, seed, 0, cfg)
        assert count_tokens(text) == 37
        assert THINK_CLOSE not in text and "ANSWER:" not in text
    spread = SimConfig(think_mean_tokens=150, think_length_cv=0.5)
    lengths = [segment_length(P, seed, 0, spread) for seed in range(2000)]
    mean = sum(lengths) / len(lengths)
    sd = math.sqrt(sum((x - mean) ** 2 for x in lengths) / len(lengths))
    assert abs(mean - 150) < 5 and abs(sd / mean - 0.5) < 0.05


def test_stop_at_close_gives_the_segment_with_honest_usage(client: httpx.Client) -> None:
    data = _chat(
        client,
        model=FIXED,
        messages=[
            {"role": "user", "content": P.question},
            {"role": "assistant", "content": THINK_OPEN + "\n"},
        ],
        continue_final_message=True,
        stop=[THINK_CLOSE],
        seed=7,
    )
    text = data["choices"][0]["message"]["content"]
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["completion_tokens"] == count_tokens(text) == 60


def test_wait_continues_and_the_thinking_so_far_counts(client: httpx.Client) -> None:
    first = _complete(
        client, model=FIXED, prompt=P.question + "\n\n" + THINK_OPEN + "\n", stop=THINK_CLOSE
    )
    thought = first["choices"][0]["text"]
    so_far = THINK_OPEN + "\n" + thought + " Wait"
    second = _complete(client, model=FIXED, prompt=P.question + "\n\n" + so_far, seed=0)
    more = second["choices"][0]["text"]
    assert more.startswith(", ")  # "Wait, ..." goes on thinking
    assert THINK_CLOSE in more and "ANSWER:" in more.split(THINK_CLOSE)[1]
    assert second["usage"]["completion_tokens"] == count_tokens(more)
    # the continuation's accuracy is read at the whole thought's length
    cfg = SimConfig(think_length_cv=0, think_mean_tokens=60)
    whole = (so_far + more.split(THINK_CLOSE)[0]).removeprefix(THINK_OPEN)
    sample = generate(P, 0, cfg, "\n\n" + so_far)
    assert sample.text == more
    assert count_tokens(whole.strip()) == 60 + 1 + 60  # two segments and the forced word


def test_forced_close_answers_at_once(client: httpx.Client) -> None:
    prefix = THINK_OPEN + "\nI considered it." + THINK_CLOSE + "\n\n"
    data = _chat(
        client,
        messages=[
            {"role": "user", "content": P.question},
            {"role": "assistant", "content": prefix},
        ],
        continue_final_message=True,
        seed=3,
    )
    text = data["choices"][0]["message"]["content"]
    assert THINK_CLOSE not in text and THINK_OPEN not in text and "ANSWER:" in text


def test_enable_thinking_through_chat_template_kwargs(client: httpx.Client) -> None:
    data = _chat(
        client,
        messages=[{"role": "user", "content": P.question}],
        chat_template_kwargs={"enable_thinking": True},
        seed=2,
    )
    assert data["choices"][0]["message"]["content"].startswith(THINK_OPEN)
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": "sim-gsm8k",
            "messages": [{"role": "user", "content": "hi"}],
            "chat_template_kwargs": "yes",
        },
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "chat_template_kwargs"


def test_curve_knobs_validate(client: httpx.Client) -> None:
    r = client.post("/v1/completions", json={"model": "sim-gsm8k;think_p0=2", "prompt": P.question})
    assert r.status_code == 400


@pytest.mark.parametrize("length", [0, 200, 600, 1500])
def test_accuracy_follows_the_curve(length: int) -> None:
    """After a thought of exactly L tokens, answers are right with p(L) (400 problems,
    within 3.5 binomial standard errors)."""
    cfg = SimConfig()
    problems = synthetic_problems(400, seed=11)
    thought = " ".join(["hmm"] * length)
    prefix = f"\n\n{THINK_OPEN}\n{thought}{THINK_CLOSE}\n\n"
    right = sum(generate(p, 1000 + i, cfg, prefix).correct for i, p in enumerate(problems))
    expected = accuracy_at(length, cfg)
    assert abs(right / len(problems) - expected) <= 3.5 * math.sqrt(
        expected * (1 - expected) / len(problems)
    )


def test_longer_thought_never_turns_right_to_wrong() -> None:
    cfg = SimConfig()
    for i, p in enumerate(synthetic_problems(200, seed=3)):
        verdicts = [
            generate(p, i, cfg, f"{THINK_OPEN}\n{' '.join(['x'] * n)}{THINK_CLOSE}").correct
            for n in (0, 100, 400, 2000)
        ]
        assert verdicts == sorted(verdicts)


def test_accuracy_at() -> None:
    cfg = SimConfig(think_p0=0.2, think_p_max=0.8, think_tau_tokens=100)
    assert accuracy_at(0, cfg) == pytest.approx(0.2)
    assert accuracy_at(100, cfg) == pytest.approx(0.2 + 0.6 * (1 - math.exp(-1)))
    assert accuracy_at(10**6, cfg) == pytest.approx(0.8)
