"""llama.cpp's native routes as ttc uses them: the rendered turn, the ``/completion`` body,
per-sample usage from its results (the shapes of its server source, ``server-task.cpp``),
and the echoed prefill of its chat route."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ttc_core.errors import InferenceError
from ttc_core.inference.client import GenerationRequest
from ttc_core.inference.llamacpp import (
    NativeRoutes,
    apply_template_body,
    join_turn,
    native_root,
    strip_echo,
    turn_of,
)

QUESTION = [{"role": "user", "content": "What is 2 + 3?"}]


def _result(index: int, content: str, predicted: int, stop_type: str = "limit") -> dict[str, Any]:
    return {
        "index": index,
        "content": content,
        "tokens_predicted": predicted,
        "tokens_evaluated": 21,
        "tokens_cached": 0,
        "stop_type": stop_type,
        "timings": {"predicted_n": predicted},
    }


def test_native_root_is_beside_v1() -> None:
    assert native_root("http://gpu:8080/v1") == "http://gpu:8080"
    assert native_root("http://gpu:8080/v1/") == "http://gpu:8080"
    assert native_root("http://gpu:8080") == "http://gpu:8080"


def test_a_final_assistant_message_is_the_turn_so_far() -> None:
    req = GenerationRequest(
        n=2,
        messages=[*QUESTION, {"role": "assistant", "content": "Step 1.\n\n"}],
        extra_body={
            "continue_final_message": True,
            "add_generation_prompt": False,
            "chat_template_kwargs": {"enable_thinking": True},
        },
    )
    turn = turn_of(req)
    assert turn.messages == QUESTION
    assert turn.partial == "Step 1.\n\n"
    assert turn.template_kwargs == {"enable_thinking": True}
    body = apply_template_body(turn.messages, turn.template_kwargs)
    assert body == {
        "messages": QUESTION,
        "add_generation_prompt": True,
        "chat_template_kwargs": {"enable_thinking": True},
    }
    assert turn_of(GenerationRequest(n=1, messages=QUESTION)).partial == ""


def test_join_turn_never_opens_a_thought_twice() -> None:
    assert join_turn("<|im_start|>assistant\n", "<think>\nhm", "<think>") == (
        "<|im_start|>assistant\n<think>\nhm"
    )
    assert join_turn("<|im_start|>assistant\n<think>\n", "<think>\nhm", "<think>") == (
        "<|im_start|>assistant\n<think>\nhm"
    )
    assert join_turn("A:", "Step", None) == "A:Step"


def test_render_once_per_conversation_then_append_the_turn() -> None:
    routes = NativeRoutes("http://llama:8080/v1", "chat", "<think>")
    rendered: list[dict[str, Any]] = []

    async def render(body: dict[str, Any]) -> Any:
        rendered.append(body)
        return {"prompt": "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"}

    async def main() -> list[str]:
        out = []
        for partial in ("", "Step 1.\n\n", "Step 1.\n\nStep 2.\n\n"):
            messages = [*QUESTION, {"role": "assistant", "content": partial}] if partial else None
            req = GenerationRequest(n=1, messages=messages or QUESTION)
            out.append(await routes.prompt(req, render))
        return out

    prompts = asyncio.run(main())
    assert len(rendered) == 1  # one render for the job's conversation
    assert rendered[0]["add_generation_prompt"] is True
    assert prompts[1].endswith("<|im_start|>assistant\nStep 1.\n\n")
    assert prompts[2].endswith("assistant\nStep 1.\n\nStep 2.\n\n")
    assert routes.render_url == "http://llama:8080/apply-template"
    assert routes.completion_url == "http://llama:8080/completion"


def test_completion_body_carries_sampling_and_drops_chat_fields() -> None:
    routes = NativeRoutes("http://llama:8080/v1", "chat", "<think>")
    req = GenerationRequest(
        n=4,
        messages=QUESTION,
        temperature=0.7,
        top_p=0.9,
        max_tokens=33,
        stop=["\n\n"],
        extra_body={"continue_final_message": True, "chat_template_kwargs": {"x": 1}},
    )
    body = routes.body(req, "PROMPT", 4, 1000)
    assert body == {
        "prompt": "PROMPT",
        "n": 4,
        "n_predict": 33,
        "temperature": 0.7,
        "top_p": 0.9,
        "cache_prompt": True,
        "return_tokens": False,
        "seed": 1000,
        "stop": ["\n\n"],
    }


def test_each_sample_counts_its_own_tokens() -> None:
    payload = [
        _result(1, " b", 7, "eos"),
        _result(0, " a", 20),
        _result(3, " d", 3, "word"),
        _result(2, " c", 11),
    ]
    prompt_tokens, samples = NativeRoutes.samples(payload, 4)
    assert prompt_tokens == 21
    assert [s.text for s in samples] == [" a", " b", " c", " d"]
    assert [s.completion_tokens for s in samples] == [20, 7, 11, 3]
    assert [s.finish_reason for s in samples] == ["length", "stop", "length", "stop"]
    # one sample comes as an object, not a list
    assert NativeRoutes.samples(_result(0, "x", 5), 1)[1][0].completion_tokens == 5


@pytest.mark.parametrize(
    "payload", [[_result(0, "a", 1)], "not json objects", [1, 2], {"tokens_predicted": -5}]
)
def test_malformed_or_short_answers_are_inference_errors(payload: Any) -> None:
    if isinstance(payload, dict):  # absurd counts are clamped, not trusted
        assert NativeRoutes.samples(payload, 1)[1][0].completion_tokens == 0
        return
    with pytest.raises(InferenceError):
        NativeRoutes.samples(payload, 2)


def test_strip_echo_removes_only_an_echoed_prefill() -> None:
    assert strip_echo("Step 1.\n\nStep 2.", "Step 1.\n\n") == "Step 2."
    assert strip_echo("Step 2.", "Step 1.\n\n") == "Step 2."  # vLLM: new tokens only
    assert strip_echo("abc", None) == "abc"
    assert strip_echo("abc", "") == "abc"
