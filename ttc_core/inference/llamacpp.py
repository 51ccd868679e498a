"""llama.cpp's own server (``llama-server``): its native routes, and what ttc does about
the ways its OpenAI-compatible ones differ.

What its OpenAI routes do that ttc cannot use as they are (seen on a build from source,
see ``tests/conformance/test_llamacpp.py``):

- For ``n`` > 1, ``usage.completion_tokens`` counts the first choice only (the response is
  the first sample's, with the others' choices appended), so a job's usage would miss
  what the server generated for the rest.
- A final assistant message is continued (a "prefill"), but the returned ``content``
  *includes* that prefill text, followed by the new tokens (:func:`strip_echo`).
- With a thinking template, the chat route parses the model's ``<think>`` block out of
  ``content`` into ``reasoning_content``, and some builds refuse a prefill together with
  ``enable_thinking`` (400 "Assistant response prefill is incompatible with
  enable_thinking"): budget forcing, which continues a thought, cannot go through it.

So ttc talks to llama.cpp as it talks to vLLM when it continues a turn: the chat is
rendered once by the server's own template (``POST /apply-template``, cached per prompt),
the turn so far is appended as it is, and the samples come from the native
``POST /completion`` route. That route returns one result per sample, each with its own
``tokens_predicted`` (what ``/metrics``' ``llamacpp:tokens_predicted_total`` counts), only
the new text, and no reasoning parsing; with ``n`` > 1 the prompt is processed once and
its state copied to the other slots, and sample i is seeded ``seed + i``.

Native routes live at the server's root, next to ``/v1``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ttc_core.errors import InferenceError


class Request(Protocol):
    """What of a generation request the native routes use (``GenerationRequest``)."""

    @property
    def messages(self) -> Sequence[dict[str, Any]] | None: ...
    @property
    def prompt(self) -> str | None: ...
    @property
    def extra_body(self) -> dict[str, Any] | None: ...
    @property
    def temperature(self) -> float: ...
    @property
    def top_p(self) -> float: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def stop(self) -> Sequence[str] | None: ...


#: Rendered chat prompts kept per client (one per job prompt and template switches).
RENDER_CACHE_SIZE = 512

#: Chat-only fields, meaningless to ``/completion`` once the chat is rendered.
CHAT_ONLY = frozenset(
    {"chat_template_kwargs", "continue_final_message", "add_generation_prompt", "chat_template"}
)

#: ``stop_type`` of a native result, as an OpenAI ``finish_reason``.
_FINISH = {"eos": "stop", "word": "stop", "limit": "length"}


def native_root(base_url: str) -> str:
    """The server's root (native routes), from an endpoint's OpenAI base URL."""
    return base_url.rstrip("/").removesuffix("/v1")


def render_key(messages: Sequence[dict[str, Any]], template_kwargs: dict[str, Any]) -> str:
    return json.dumps([list(messages), template_kwargs], sort_keys=True, default=str)


def apply_template_body(
    messages: Sequence[dict[str, Any]], template_kwargs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Body of ``POST /apply-template``: the conversation before the turn being written,
    with the assistant's generation prompt (the partial turn is appended by ttc, never
    rendered, so no template trims or re-renders it)."""
    body: dict[str, Any] = {"messages": list(messages), "add_generation_prompt": True}
    if template_kwargs:
        body["chat_template_kwargs"] = dict(template_kwargs)
    return body


def rendered_prompt(payload: Any) -> str:
    """The prompt in ``/apply-template``'s answer (``{"prompt": ...}``)."""
    prompt = payload.get("prompt") if isinstance(payload, dict) else None
    if not isinstance(prompt, str):
        raise InferenceError("llama.cpp /apply-template answered no prompt")
    return prompt


def completion_body(
    prompt: str,
    *,
    n: int,
    seed: int | None,
    temperature: float,
    top_p: float,
    max_tokens: int,
    stop: Sequence[str] | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Body of a native ``POST /completion`` for ``n`` samples of ``prompt``."""
    body: dict[str, Any] = {
        "prompt": prompt,
        "n": n,
        "n_predict": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "cache_prompt": True,
        # The sampled token ids are not needed: the counts come with each result.
        "return_tokens": False,
    }
    if seed is not None:
        body["seed"] = seed
    if stop:
        body["stop"] = list(stop)
    if extra:
        body.update(extra)
    return body


def completion_results(payload: Any, k: int) -> list[dict[str, Any]]:
    """The ``k`` per-sample results of a native ``/completion`` answer, in sample order
    (one object for ``n`` = 1, a list for more)."""
    results = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(r, dict) for r in results):
        raise InferenceError("malformed llama.cpp /completion answer (not objects)")
    results = sorted(results, key=lambda r: int(r.get("index") or 0))
    if len(results) != k:
        raise InferenceError(f"asked llama.cpp for {k} samples, got {len(results)}")
    return results


def result_usage(result: dict[str, Any]) -> tuple[int, int, int]:
    """(prompt tokens, completion tokens, cached prompt tokens) of one native result."""

    def count(name: str) -> int:
        value = result.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return count("tokens_evaluated"), count("tokens_predicted"), count("tokens_cached")


def finish_reason(result: dict[str, Any]) -> str | None:
    return _FINISH.get(str(result.get("stop_type") or ""))


def strip_echo(text: str, prefill: str | None) -> str:
    """The new text of a chat reply that continued ``prefill`` (llama.cpp's chat route
    returns the prefill followed by the new tokens; vLLM the new tokens only): the
    echoed prefix is removed where the reply starts with it."""
    if prefill and text.startswith(prefill):
        return text[len(prefill) :]
    return text


@dataclass(frozen=True, slots=True)
class Turn:
    """A chat request as llama.cpp's renderer sees it: the conversation before the turn
    being written, the turn so far (empty for a new turn), and the template switches."""

    messages: list[dict[str, Any]]
    partial: str
    template_kwargs: dict[str, Any]


def turn_of(req: Request) -> Turn:
    """Split a chat request into what is rendered and what is appended: a final assistant
    message (or ``continue_text``, where requests carry it) is the turn so far."""
    messages = list(req.messages or [{"role": "user", "content": req.prompt or ""}])
    partial = getattr(req, "continue_text", None)
    if partial is None and messages and messages[-1].get("role") == "assistant":
        partial = str(messages.pop().get("content") or "")
    kwargs = dict((req.extra_body or {}).get("chat_template_kwargs") or {})
    return Turn(messages, partial or "", kwargs)


def join_turn(rendered: str, partial: str, think_open: str | None) -> str:
    """The rendered prompt (ending with the assistant's generation prompt) and the turn so
    far; a template whose generation prompt already opens the thought gets no second one."""
    if think_open and partial.startswith(think_open):
        tail = rendered.rstrip("\n")
        if tail.endswith(think_open):
            return tail + partial[len(think_open) :]
    return rendered + partial


Render = Callable[[dict[str, Any]], Awaitable[Any]]


class NativeRoutes:
    """Generation on llama.cpp's native routes for one endpoint: chats rendered once by
    ``/apply-template`` (cached), samples from ``/completion`` with exact usage each."""

    def __init__(self, base_url: str, api: str, think_open: str | None) -> None:
        self.root = native_root(base_url)
        self.api = api
        self.think_open = think_open
        self._rendered: dict[str, str] = {}

    @property
    def render_url(self) -> str:
        return self.root + "/apply-template"

    @property
    def completion_url(self) -> str:
        return self.root + "/completion"

    async def prompt(self, req: Request, render: Render) -> str:
        """The full prompt of ``req``: rendered by the server's template (once per
        conversation and switches; ``render`` posts a body to ``/apply-template``) with
        the turn so far appended as it is."""
        if self.api != "chat" and req.prompt is not None:
            return req.prompt
        turn = turn_of(req)
        key = render_key(turn.messages, turn.template_kwargs)
        rendered = self._rendered.get(key)
        if rendered is None:
            payload = await render(apply_template_body(turn.messages, turn.template_kwargs))
            rendered = rendered_prompt(payload)
            if len(self._rendered) >= RENDER_CACHE_SIZE:
                self._rendered.pop(next(iter(self._rendered)))
            self._rendered[key] = rendered
        return join_turn(rendered, turn.partial, self.think_open)

    def body(self, req: Request, prompt: str, k: int, seed: int | None) -> dict[str, Any]:
        extra = {
            key: value
            for key, value in (req.extra_body or {}).items()
            if key not in CHAT_ONLY and key not in ("max_tokens", "max_completion_tokens")
        }
        return completion_body(
            prompt,
            n=k,
            seed=seed,
            temperature=req.temperature,
            top_p=req.top_p,
            max_tokens=req.max_tokens,
            stop=req.stop,
            extra=extra,
        )

    @staticmethod
    def samples(payload: Any, k: int) -> tuple[int, list[Sample]]:
        """The request's prompt tokens (processed once; the other samples copy its state)
        and each sample's text, finish reason and own completion tokens."""
        results = completion_results(payload, k)
        prompt_tokens = max(0, result_usage(results[0])[0])
        return prompt_tokens, [
            Sample(
                text=str(r.get("content") or ""),
                finish_reason=finish_reason(r),
                completion_tokens=max(0, result_usage(r)[1]),
            )
            for r in results
        ]


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    finish_reason: str | None
    completion_tokens: int
