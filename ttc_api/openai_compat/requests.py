"""Request bodies of the OpenAI routes: the fields ttc maps onto a job, and the ones it
refuses rather than silently ignore (tools, logprobs, structured output: a search over
whole answers cannot honour them). Fields that change nothing here (``user``,
``metadata``, ``store``, penalties...) are accepted and ignored, as optillm does, so
existing clients need no change."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ttc_api.openai_compat.errors import OpenAIError
from ttc_api.openai_compat.mapping import Standard
from ttc_api.openai_compat.options import TTCOptions
from ttc_core.service.submission import ChatMessage

#: Roles ttc sends on: OpenAI's ``developer`` is the newer name of ``system``.
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
#: Content part types that carry plain text (chat, and the Responses API's).
TEXT_PARTS = ("text", "input_text", "output_text")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str = Field(max_length=32)
    content: str | list[ContentPart] | None = None


def text_of(content: str | list[ContentPart] | None, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts: list[str] = []
    for i, part in enumerate(content):
        if part.type not in TEXT_PARTS or part.text is None:
            raise OpenAIError(
                400,
                f"content part type {part.type!r} is not supported: ttc searches over text",
                param=f"{param}.{i}.type",
                code="unsupported_value",
            )
        texts.append(part.text)
    return "".join(texts)


def to_messages(messages: list[MessageIn], param: str = "messages") -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for i, message in enumerate(messages):
        role = _ROLES.get(message.role)
        if role is None:
            raise OpenAIError(
                400,
                f"role {message.role!r} is not supported (tool calls are not): use "
                "system, developer, user or assistant",
                param=f"{param}.{i}.role",
                code="unsupported_value",
            )
        out.append(ChatMessage(role=role, content=text_of(message.content, f"{param}.{i}.content")))
    return out


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class _Sampling(BaseModel):
    """Fields chat and text completions share."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=200, description="strategy@endpoint, or an endpoint name")
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = Field(default=None, ge=1, le=128, description="ranked answers to return")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    logprobs: bool | int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None
    ttc: TTCOptions | None = Field(default=None, description="how ttc searches (extra_body)")

    def refuse_unsupported(self) -> None:
        if self.tools or self.functions:
            param = "tools" if self.tools else "functions"
            raise OpenAIError(
                400, "tool calling is not supported", param=param, code="unsupported_parameter"
            )
        if self.logprobs:
            raise OpenAIError(
                400, "logprobs are not supported", param="logprobs", code="unsupported_parameter"
            )
        kind = (self.response_format or {}).get("type", "text")
        if kind != "text":
            raise OpenAIError(
                400,
                f"response_format {kind!r} is not supported: only text",
                param="response_format",
                code="unsupported_value",
            )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionCreate(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[MessageIn] = Field(min_length=1, max_length=256)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None

    def standard(self) -> Standard:
        limit = None
        if self.max_completion_tokens is not None:
            limit = (self.max_completion_tokens, "max_completion_tokens")
        elif self.max_tokens is not None:
            limit = (self.max_tokens, "max_tokens")
        return Standard(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=limit,
            stop=self.stop,
            seed=self.seed,
            n=self.n,
            reasoning_effort=self.reasoning_effort,
        )


class CompletionCreate(_Sampling):
    """``POST /v1/completions``."""

    prompt: str | list[str] = Field(description="one prompt (a list of one is accepted)")
    echo: bool | None = None
    suffix: str | None = None

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise OpenAIError(
                400,
                "one prompt per request: each prompt is its own search job",
                param="prompt",
                code="unsupported_value",
            )
        return self.prompt[0]

    def standard(self) -> Standard:
        limit = (self.max_tokens, "max_tokens") if self.max_tokens is not None else None
        return Standard(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=limit,
            stop=self.stop,
            seed=self.seed,
            n=self.n,
        )
