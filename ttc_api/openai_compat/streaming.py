"""``stream: true`` for chat and text completions: OpenAI's chunk stream over a job.

The stream opens at once with the assistant's role, relays the search's progress while it
runs, then streams the chosen answers as content deltas, the usage chunk when
``stream_options.include_usage`` is set, and ``data: [DONE]``::

    data: {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta":
           {"role": "assistant", "content": ""}, ...}], "ttc": {"job_id": "...", ...}}
    data: {..., "choices": [{"index": 0, "delta": {"content": ""}, ...}],
           "ttc": {"progress": {"event": "nodes_added", "seq": 5, "nodes": 8, ...}}}
    data: {..., "choices": [{"index": 0, "delta": {"content": "Natalia sold "}, ...}]}
    ...
    data: [DONE]

A progress frame is a chunk with an empty content delta: the SDKs parse it as any chunk,
and code written for OpenAI's streams (``chunk.choices[0].delta.content or ""``) prints
nothing for it. A job that fails sends OpenAI's error frame (``data: {"error": ...}``),
which the SDKs raise. A client that disconnects cancels its job, unless the request said
``ttc.keep``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request

from ttc_api.openai_compat.envelope import chat_usage, choice_ttc, short_id, tree_url, ttc_object
from ttc_api.openai_compat.errors import error_body
from ttc_api.openai_compat.jobs import cancel_abandoned
from ttc_api.openai_compat.outcome import job_error, outcome
from ttc_api.openai_compat.progress import Disconnected, job_progress
from ttc_core.store.db import Database

#: Words per content delta: small enough to look like a stream, few enough frames.
WORDS_PER_DELTA = 4
_WORD = re.compile(r"\s*\S+\s*|\s+")


def pieces(text: str, words: int = WORDS_PER_DELTA) -> list[str]:
    """``text`` cut into deltas of a few words each; joined they give ``text`` back."""
    found = _WORD.findall(text)
    return ["".join(found[i : i + words]) for i in range(0, len(found), words)]


def sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


@dataclass(frozen=True)
class StreamRequest:
    """What a completion stream needs to know about its request."""

    job_id: str
    tenant: str | None
    model: str
    choices: int
    keep: bool
    include_usage: bool
    kind: Literal["chat", "text"]


class _Chunks:
    """Chunk bodies of one stream (the ids and timestamps they all share)."""

    def __init__(self, req: StreamRequest) -> None:
        self.req = req
        chat = req.kind == "chat"
        self.base = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{short_id(req.job_id)}",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": req.model,
            "system_fingerprint": None,
        }

    def choice(
        self,
        index: int,
        *,
        content: str | None = None,
        role: bool = False,
        finish: str | None = None,
    ) -> dict[str, Any]:
        if self.req.kind == "text":
            return {
                "index": index,
                "text": content or "",
                "logprobs": None,
                "finish_reason": finish,
            }
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if content is not None:
            delta["content"] = content
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        body = {**self.base, "choices": choices, **extra}
        if self.req.include_usage:
            body.setdefault("usage", None)  # OpenAI: null on every chunk but the last
        return sse(body)


async def completion_stream(
    request: Request, db: Database, req: StreamRequest
) -> AsyncIterator[str]:
    """The SSE body of a streaming chat or text completion over job ``req.job_id``."""
    chunks = _Chunks(req)
    done = False
    try:
        opening = {"job_id": req.job_id, "tree_url": tree_url(request, req.job_id)}
        yield chunks.chunk([chunks.choice(0, content="", role=True)], ttc=opening)
        async for frame in job_progress(request, db, req.job_id):
            if frame is None:
                yield ": keep-alive\n\n"
            else:
                yield chunks.chunk([chunks.choice(0, content="")], ttc={"progress": frame})
        job, answers = await outcome(db, req.job_id, req.choices)
        if not answers:
            err = job_error(job)
            yield sse(error_body(err.message, status=err.status, code=err.code))
            done = True
            return
        summary = ttc_object(request, job)
        for i, answer in enumerate(answers):
            if i > 0 and req.kind == "chat":
                yield chunks.chunk([chunks.choice(i, content="", role=True)])
            for piece in pieces(answer.text):
                yield chunks.chunk([chunks.choice(i, content=piece)])
            last = i == len(answers) - 1 and not req.include_usage
            extra = {"ttc": {**summary, "choice": choice_ttc(answer)}} if last else {}
            yield chunks.chunk([chunks.choice(i, finish=answer.finish_reason)], **extra)
        if req.include_usage:
            yield chunks.chunk([], usage=chat_usage(job), ttc=summary)
        yield sse("[DONE]")
        done = True
    except Disconnected:
        pass
    finally:
        if not done and not req.keep:
            await cancel_abandoned(db, req.job_id, req.tenant)
