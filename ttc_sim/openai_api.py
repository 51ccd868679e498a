"""OpenAI request validation and response shapes for ``/v1/completions`` and
``/v1/chat/completions``.

Accepted fields: ``model``, ``prompt`` (str or list of str) or ``messages``, ``n``, ``stop``
(str or list), ``max_tokens`` (chat also ``max_completion_tokens``), ``temperature``, ``seed``,
``logprobs`` (completions: an int; chat: a bool with ``top_logprobs``), ``stream``,
``stream_options.include_usage``, vLLM's ``include_stop_str_in_output`` and (chat)
``chat_template_kwargs.enable_thinking`` (the model opens a ``<think>`` block, as Qwen3 does).
Other fields are ignored, as servers do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .asgi import HTTPError
from .tokens import count_tokens

Kind = Literal["completions", "chat"]


@dataclass(slots=True)
class PromptInput:
    #: The text searched for the problem (the prompt, or all message contents joined).
    text: str
    #: Chat: the content of a final assistant message, which is continued; else None.
    final_assistant: str | None
    prompt_tokens: int
    #: The prompt as the chat template rendered it (None: ``text`` is what the model sees).
    rendered: str | None = None


@dataclass(slots=True)
class GenRequest:
    kind: Kind
    model: str
    prompts: list[PromptInput]
    n: int = 1
    stop: list[str] = field(default_factory=list)
    include_stop: bool = False
    max_tokens: int | None = None
    temperature: float = 1.0
    seed: int | None = None
    #: Number of top logprobs wanted per token, or None for no logprobs.
    logprobs: int | None = None
    stream: bool = False
    include_usage: bool = False
    #: Chat ``chat_template_kwargs.enable_thinking``: a fresh sample thinks first.
    enable_thinking: bool = False


def _int(body: dict[str, Any], name: str, lo: int, hi: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise HTTPError(400, f"{name} must be an integer", param=name)
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise HTTPError(400, f"{name} must be {bound}, got {value}", param=name)
    return value


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise HTTPError(400, f"{name} must be a boolean", param=name)
    return value


def _content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                raise HTTPError(400, "only text content parts are supported", param=where)
        return "".join(parts)
    raise HTTPError(400, "message content must be a string or a list of parts", param=where)


def _messages(body: dict[str, Any]) -> PromptInput:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HTTPError(400, "messages must be a non-empty list", param="messages")
    texts: list[str] = []
    roles: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise HTTPError(400, "each message needs a role", param=f"messages[{i}]")
        roles.append(m["role"])
        texts.append(_content_text(m.get("content"), f"messages[{i}].content"))
    final = texts[-1] if roles[-1] == "assistant" else None
    tokens = sum(count_tokens(t) for t in texts) + 4 * len(texts) + 2
    joined = "\n\n".join(texts)
    # What the model sees with no chat template: the turns one after the other, and a
    # blank line where a template would put the generation prompt, so that an assistant
    # turn continued later extends what its first sample was generated after.
    return PromptInput(joined, final, tokens, joined if final is not None else joined + "\n\n")


def _prompts(body: dict[str, Any]) -> list[PromptInput]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = list(prompt)
    elif isinstance(prompt, list) and prompt:
        raise HTTPError(400, "token-id prompts are not supported; send text", param="prompt")
    else:
        raise HTTPError(
            400, "prompt must be a string or a non-empty list of strings", param="prompt"
        )
    return [PromptInput(p, None, count_tokens(p)) for p in prompts]


def parse_request(kind: Kind, body: dict[str, Any], max_n: int) -> GenRequest:
    """Validate an OpenAI request body (400 ``HTTPError`` on a bad field)."""
    model = body.get("model", "sim")
    if not isinstance(model, str):
        raise HTTPError(400, "model must be a string", param="model")
    prompts = [_messages(body)] if kind == "chat" else _prompts(body)
    n = _int(body, "n", 1, max_n) or 1
    stop_raw = body.get("stop")
    if stop_raw is None:
        stop: list[str] = []
    elif isinstance(stop_raw, str):
        stop = [stop_raw]
    elif isinstance(stop_raw, list) and all(isinstance(s, str) for s in stop_raw):
        stop = list(stop_raw)
    else:
        raise HTTPError(400, "stop must be a string or a list of strings", param="stop")
    stop = [s for s in stop if s]
    max_tokens = _int(body, "max_tokens", 1)
    if kind == "chat":
        max_tokens = _int(body, "max_completion_tokens", 1) or max_tokens
    temperature = body.get("temperature")
    if temperature is None:
        temperature = 1.0
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise HTTPError(400, "temperature must be a number", param="temperature")
    if not 0 <= temperature <= 2:
        raise HTTPError(400, "temperature must be between 0 and 2", param="temperature")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise HTTPError(400, "seed must be an integer", param="seed")
    if kind == "chat":
        top = _int(body, "top_logprobs", 0, 20) or 0
        logprobs = top if _bool(body, "logprobs") else None
    else:
        logprobs = _int(body, "logprobs", 0, 20)
    stream = _bool(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise HTTPError(400, "stream_options must be an object", param="stream_options")
    include_usage = bool(options and options.get("include_usage"))
    template_kwargs = body.get("chat_template_kwargs")
    if template_kwargs is not None and not isinstance(template_kwargs, dict):
        raise HTTPError(400, "chat_template_kwargs must be an object", param="chat_template_kwargs")
    enable_thinking = kind == "chat" and bool((template_kwargs or {}).get("enable_thinking"))
    return GenRequest(
        kind=kind,
        model=model,
        prompts=prompts,
        n=n,
        stop=stop,
        include_stop=_bool(body, "include_stop_str_in_output"),
        max_tokens=max_tokens,
        temperature=float(temperature),
        seed=seed,
        logprobs=logprobs,
        stream=stream,
        include_usage=include_usage,
        enable_thinking=enable_thinking,
    )


# ------------------------------------------------------------------------------ responses


@dataclass(slots=True)
class ChoiceOut:
    index: int
    text: str
    tokens: list[str]
    finish_reason: str
    stop_reason: str | None
    logprobs: list[float] | None
    #: What produced it: ``"sample"``, or a judge (``"value"``, ``"critique"``, ``"revise"``).
    kind: str = "sample"


def completion_logprobs(c: ChoiceOut, top: int, start: int = 0) -> dict[str, Any]:
    toks = c.tokens
    lps = c.logprobs or []
    offsets = []
    pos = start
    for t in toks:
        offsets.append(pos)
        pos += len(t)
    return {
        "tokens": toks,
        "token_logprobs": lps,
        "top_logprobs": [{t: lp} for t, lp in zip(toks, lps, strict=True)] if top else None,
        "text_offset": offsets,
    }


def _chat_token(token: str, lp: float) -> dict[str, Any]:
    return {"token": token, "logprob": lp, "bytes": list(token.encode())}


def chat_logprobs(tokens: list[str], lps: list[float], top: int) -> dict[str, Any]:
    content = []
    for t, lp in zip(tokens, lps, strict=True):
        entry = _chat_token(t, lp)
        entry["top_logprobs"] = [_chat_token(t, lp)] if top else []
        content.append(entry)
    return {"content": content}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def with_cached(use: dict[str, Any] | None, cached_tokens: int) -> dict[str, Any] | None:
    """``use`` with vLLM's ``prompt_tokens_details.cached_tokens`` (None stays None)."""
    if use is None:
        return None
    return {**use, "prompt_tokens_details": {"cached_tokens": cached_tokens}}


def response_body(
    req: GenRequest, rid: str, created: int, choices: list[ChoiceOut], use: dict[str, int]
) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for c in choices:
        if req.kind == "chat":
            lp = None
            if req.logprobs is not None:
                lp = chat_logprobs(c.tokens, c.logprobs or [], req.logprobs)
            out.append(
                {
                    "index": c.index,
                    "message": {"role": "assistant", "content": c.text},
                    "logprobs": lp,
                    "finish_reason": c.finish_reason,
                    "stop_reason": c.stop_reason,
                }
            )
        else:
            out.append(
                {
                    "index": c.index,
                    "text": c.text,
                    "logprobs": completion_logprobs(c, req.logprobs)
                    if req.logprobs is not None
                    else None,
                    "finish_reason": c.finish_reason,
                    "stop_reason": c.stop_reason,
                }
            )
    return {
        "id": rid,
        "object": "chat.completion" if req.kind == "chat" else "text_completion",
        "created": created,
        "model": req.model,
        "choices": out,
        "usage": use,
    }


def chunk_choice(
    req: GenRequest,
    c: ChoiceOut,
    start: int,
    stop: int,
    offset: int,
) -> dict[str, Any]:
    """A streamed choice carrying tokens ``start:stop`` of ``c`` (one token per chunk in
    practice); ``offset`` is the character offset of token ``start``."""
    text = "".join(c.tokens[start:stop])
    lps = (c.logprobs or [])[start:stop]
    if req.kind == "chat":
        lp = None
        if req.logprobs is not None:
            lp = chat_logprobs(c.tokens[start:stop], lps, req.logprobs)
        return {"index": c.index, "delta": {"content": text}, "logprobs": lp, "finish_reason": None}
    lp = None
    if req.logprobs is not None:
        part = ChoiceOut(c.index, text, c.tokens[start:stop], "", None, lps)
        lp = completion_logprobs(part, req.logprobs, offset)
    return {"index": c.index, "text": text, "logprobs": lp, "finish_reason": None}


def final_chunk_choice(req: GenRequest, c: ChoiceOut) -> dict[str, Any]:
    if req.kind == "chat":
        return {
            "index": c.index,
            "delta": {},
            "logprobs": None,
            "finish_reason": c.finish_reason,
            "stop_reason": c.stop_reason,
        }
    return {
        "index": c.index,
        "text": "",
        "logprobs": None,
        "finish_reason": c.finish_reason,
        "stop_reason": c.stop_reason,
    }


def chunk(req: GenRequest, rid: str, created: int, choices: list[dict[str, Any]]) -> dict:
    return {
        "id": rid,
        "object": "chat.completion.chunk" if req.kind == "chat" else "text_completion",
        "created": created,
        "model": req.model,
        "choices": choices,
    }
