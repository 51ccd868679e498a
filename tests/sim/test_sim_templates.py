"""Chat-template mode: the simulator renders chat requests as vLLM does, so continuation
behaves as it does on real templates (trimming, Qwen3 re-rendering), over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from ttc_sim.tasks import synthetic_problems
from ttc_sim.templates import (
    BOTH_FLAGS,
    CONTINUE_MISSING,
    EMPTY_THINK,
    TemplateError,
    assistant_turn,
    render,
)

_PROBLEM = synthetic_problems(1, seed=3)[0]
QUESTION = _PROBLEM.question
STEP = _PROBLEM.steps[0]


def test_qwen25_keeps_the_continued_message_as_sent() -> None:
    out = render(
        "qwen2.5",
        [("user", "q"), ("assistant", "step one\n\n")],
        add_generation_prompt=False,
        continue_final_message=True,
    )
    assert out.prompt.endswith("<|im_start|>assistant\nstep one\n\n")
    assert out.assistant == "step one\n\n"
    assert out.prompt.startswith("<|im_start|>system\nYou are Qwen")


def test_llama3_trims_the_trailing_delimiter() -> None:
    out = render(
        "llama3",
        [("user", "q"), ("assistant", "step one\n\n")],
        add_generation_prompt=False,
        continue_final_message=True,
    )
    assert out.assistant == "step one"  # the delimiter is gone: the model writes it first
    assert out.prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\nstep one")


def test_both_flags_are_refused_like_vllm() -> None:
    with pytest.raises(TemplateError, match="Cannot set both"):
        render("qwen2.5", [("user", "q")], add_generation_prompt=True, continue_final_message=True)


@pytest.mark.parametrize(
    ("thought", "ok"),
    [("I add them.\n", True), ("I add them.", False), ("I add them.\n\n", False)],
)
def test_qwen3_answer_request_needs_exactly_one_newline(thought: str, ok: bool) -> None:
    final = "<think>\n" + thought + "</think>\n\n"
    messages = [("user", "q"), ("assistant", final)]
    if ok:
        out = render("qwen3", messages, add_generation_prompt=False, continue_final_message=True)
        assert out.assistant == "<think>\nI add them.\n</think>\n\n"
    else:
        with pytest.raises(TemplateError) as info:
            render("qwen3", messages, add_generation_prompt=False, continue_final_message=True)
        assert str(info.value) == CONTINUE_MISSING


def test_qwen3_continued_thought_gets_an_empty_think_block() -> None:
    out = render(
        "qwen3",
        [("user", "q"), ("assistant", "<think>\nLet me see")],
        add_generation_prompt=False,
        continue_final_message=True,
    )
    assert out.assistant == EMPTY_THINK + "<think>\nLet me see"


def test_qwen3_generation_prompt_with_thinking_off() -> None:
    out = render(
        "qwen3",
        [("user", "q")],
        add_generation_prompt=True,
        continue_final_message=False,
        enable_thinking=False,
    )
    assert out.prompt.endswith("<|im_start|>assistant\n" + EMPTY_THINK)
    assert assistant_turn(out.prompt) == EMPTY_THINK


def _chat(
    client: httpx.Client, model: str, messages: list[dict[str, str]], **kw: object
) -> httpx.Response:
    body = {"model": model, "messages": messages, "seed": 3, "max_tokens": 200, **kw}
    return client.post("/v1/chat/completions", json=body)


def test_trimming_template_makes_step_continuation_empty(client: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": STEP + "\n\n"},
    ]
    flags = {"continue_final_message": True, "add_generation_prompt": False, "stop": ["\n\n"]}
    lenient = _chat(client, "sim-gsm8k;chat_template=qwen2.5", messages, **flags)
    trimmed = _chat(client, "sim-gsm8k;chat_template=llama3", messages, **flags)
    assert lenient.status_code == trimmed.status_code == 200
    assert lenient.json()["choices"][0]["message"]["content"].strip()  # a real next step
    assert trimmed.json()["choices"][0]["message"]["content"] == ""  # the delimiter came first


def test_continue_without_add_generation_prompt_false_is_a_400(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": STEP}]
    resp = _chat(client, "sim-gsm8k;chat_template=qwen2.5", messages, continue_final_message=True)
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == BOTH_FLAGS


def test_without_continue_a_final_assistant_message_is_closed(client: httpx.Client) -> None:
    # A real template closes the assistant turn and opens a new one: no continuation.
    messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": STEP}]
    resp = _chat(client, "sim-gsm8k;chat_template=qwen2.5", messages)
    assert resp.status_code == 200
    assert not resp.json()["choices"][0]["message"]["content"].startswith("\n")


def test_qwen3_answer_request_is_a_400_unless_one_newline(client: httpx.Client) -> None:
    flags = {"continue_final_message": True, "add_generation_prompt": False}
    for thought, status in (("I add 3 and 4.\n", 200), ("I add 3 and 4.", 400)):
        messages = [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "<think>\n" + thought + "</think>\n\n"},
        ]
        resp = _chat(client, "sim-gsm8k;chat_template=qwen3", messages, **flags)
        assert resp.status_code == status, resp.text
        if status == 400:
            assert resp.json()["error"]["type"] == "BadRequestError"
            assert "continue_final_message is set" in resp.json()["error"]["message"]
        else:
            assert "ANSWER:" in resp.json()["choices"][0]["message"]["content"]


def test_qwen3_continued_thought_reads_thinking_off(client: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "<think>\nLet me think about the shells."},
    ]
    flags = {"continue_final_message": True, "add_generation_prompt": False, "stop": ["</think>"]}
    lenient = _chat(client, "sim-gsm8k", messages, **flags).json()
    qwen3 = _chat(client, "sim-gsm8k;chat_template=qwen3", messages, **flags).json()
    assert "ANSWER:" not in lenient["choices"][0]["message"]["content"]  # goes on thinking
    assert "ANSWER:" in qwen3["choices"][0]["message"]["content"]  # answers at once


def test_completions_prompt_with_a_rendered_turn_is_continued(client: httpx.Client) -> None:
    # What a client that renders the template itself sends on the completions API.
    rendered = render(
        "llama3",
        [("user", QUESTION)],
        add_generation_prompt=True,
        continue_final_message=False,
    ).prompt
    body = {"model": "sim-gsm8k", "seed": 3, "max_tokens": 200, "stop": ["\n\n"]}
    resp = client.post("/v1/completions", json={**body, "prompt": rendered + STEP + "\n\n"})
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["text"].strip()  # the next step, not an empty one
