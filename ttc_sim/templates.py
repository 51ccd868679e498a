"""Chat templates as real servers apply them, for the simulator's ``chat_template`` mode.

A real server does not hand the model a list of messages: it renders them with the
model's Jinja chat template, and with ``continue_final_message`` cuts the rendering after
the final message, the way ``transformers`` does. What the model then continues is what
the *template* left of that message, which is not always what the client sent:

``qwen2.5``
    ChatML (``<|im_start|>role\\ncontent<|im_end|>\\n``, a default system prompt): the
    content is kept as sent.
``llama3``
    Llama 3's header tokens, with ``message['content'] | trim``: a continued assistant
    message loses its trailing whitespace, so a path of steps ending in the step delimiter
    ``\\n\\n`` reaches the model without it, the model writes the delimiter first, and a
    client that stops at the delimiter gets an empty step.
``qwen3``
    Qwen3's template: the last assistant turn is re-rendered as ``<think>\\n`` +
    reasoning.strip("\\n") + ``\\n</think>\\n\\n`` + answer, the reasoning read from the
    content before ``</think>``. A message without ``</think>`` (a thought being
    continued) gets an *empty* think block in front, which Qwen3 reads as "thinking off";
    a message with ``</think>`` is found again in the rendering only when its thought ends
    in exactly one newline, and otherwise the request fails with ``transformers``' error
    (vLLM answers 400). ``enable_thinking: false`` in ``chat_template_kwargs`` adds the
    empty block to a fresh generation prompt.

``none`` (the default) keeps the simulator lenient: a final assistant message is
continued as sent, whatever the request's flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ASSISTANT_HEADERS",
    "TEMPLATES",
    "Rendered",
    "TemplateError",
    "assistant_turn",
    "render",
]

TemplateName = Literal["none", "qwen2.5", "llama3", "qwen3"]
TEMPLATES: tuple[str, ...] = ("none", "qwen2.5", "llama3", "qwen3")

QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
CHATML_ASSISTANT = "<|im_start|>assistant\n"
LLAMA3_ASSISTANT = "<|start_header_id|>assistant<|end_header_id|>\n\n"
#: Where an assistant turn starts, in the renderings this module produces.
ASSISTANT_HEADERS = (CHATML_ASSISTANT, LLAMA3_ASSISTANT)
EMPTY_THINK = "<think>\n\n</think>\n\n"

#: ``transformers``' error when the rendering lost part of the final message.
CONTINUE_MISSING = (
    "continue_final_message is set but the final message does not appear in the chat after "
    "applying the chat template! This can happen if the chat template deletes portions of "
    "the final message. Please verify the chat template and final message in your chat to "
    "ensure they are compatible."
)
#: vLLM's request validation of the two flags together.
BOTH_FLAGS = "Cannot set both `continue_final_message` and `add_generation_prompt` to True."


class TemplateError(ValueError):
    """What the server answers 400 with."""


@dataclass(frozen=True, slots=True)
class Rendered:
    #: The whole prompt the model sees.
    prompt: str
    #: The open assistant turn the model continues ("" for a fresh turn).
    assistant: str


def _chatml(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def _qwen25(messages: Sequence[tuple[str, str]], gen: bool) -> str:
    out = [] if messages and messages[0][0] == "system" else [_chatml("system", QWEN_SYSTEM)]
    out += [_chatml(role, content) for role, content in messages]
    return "".join(out) + (CHATML_ASSISTANT if gen else "")


def _llama3(messages: Sequence[tuple[str, str]], gen: bool) -> str:
    out = ["<|begin_of_text|>"]
    for role, content in messages:
        out.append(f"<|start_header_id|>{role}<|end_header_id|>\n\n{content.strip()}<|eot_id|>")
    return "".join(out) + (LLAMA3_ASSISTANT if gen else "")


def _qwen3(messages: Sequence[tuple[str, str]], gen: bool, enable_thinking: bool) -> str:
    last_query = max((i for i, (role, _) in enumerate(messages) if role == "user"), default=-1)
    out: list[str] = []
    for i, (role, content) in enumerate(messages):
        if role != "assistant":
            out.append(_chatml(role, content))
            continue
        reasoning = ""
        if "</think>" in content:
            reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
            content = content.split("</think>")[-1].lstrip("\n")
        last = i == len(messages) - 1
        if i > last_query and (last or reasoning):
            body = "<think>\n" + reasoning.strip("\n") + "\n</think>\n\n" + content.lstrip("\n")
        else:
            body = content
        out.append(f"{CHATML_ASSISTANT}{body}<|im_end|>\n")
    if gen:
        out.append(CHATML_ASSISTANT + ("" if enable_thinking else EMPTY_THINK))
    return "".join(out)


def _cut_after_final(rendered: str, final: str) -> str:
    """``transformers``' ``continue_final_message``: the rendering up to the end of the
    final message as the template rendered it."""
    if final.strip() not in rendered:
        raise TemplateError(CONTINUE_MISSING)
    loc = rendered.rindex(final.strip())
    if rendered[loc : loc + len(final.lstrip())] == final:
        return rendered[: loc + len(final.lstrip())]
    return rendered[: loc + len(final.strip())]


def assistant_turn(prompt: str) -> str | None:
    """What follows the last assistant header of a rendered prompt; None without one."""
    best = -1
    header = ""
    for h in ASSISTANT_HEADERS:
        at = prompt.rfind(h)
        if at > best:
            best, header = at, h
    return None if best < 0 else prompt[best + len(header) :]


def render(
    template: str,
    messages: Sequence[tuple[str, str]],
    *,
    add_generation_prompt: bool,
    continue_final_message: bool,
    enable_thinking: bool = True,
) -> Rendered:
    """The prompt a server with ``template`` builds from ``(role, content)`` messages."""
    if continue_final_message and add_generation_prompt:
        raise TemplateError(BOTH_FLAGS)
    gen = add_generation_prompt and not continue_final_message
    if template == "qwen2.5":
        rendered = _qwen25(messages, gen)
    elif template == "llama3":
        rendered = _llama3(messages, gen)
    elif template == "qwen3":
        rendered = _qwen3(messages, gen, enable_thinking)
    else:
        raise ValueError(f"unknown chat template {template!r}")
    if continue_final_message and messages:
        rendered = _cut_after_final(rendered, messages[-1][1])
    turn = assistant_turn(rendered) if (gen or continue_final_message) else None
    return Rendered(rendered, turn or "")
