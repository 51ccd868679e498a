"""Ids bound to the work in progress (contextvars), carried by every log line and span.

A task, a request or a coroutine binds what it is about once; the log formatter reads
the ids back. Context variables follow asyncio tasks and threads started with a copy of
the context, so a coroutine's ids never leak into another request's lines.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar, Token

#: The ids a log line may carry, in the order they are written.
FIELDS = ("job_id", "batch_id", "node_id", "tenant", "request_id", "task_id")

_VARS: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"ttc_{name}", default=None) for name in FIELDS
}


def current() -> dict[str, str]:
    """The ids bound now (unset ones left out)."""
    return {name: value for name, var in _VARS.items() if (value := var.get()) is not None}


def bind_ids(**ids: str | None) -> dict[str, Token[str | None]]:
    """Bind ids for the rest of the current context; returns tokens for :func:`unbind`.
    ``None`` values are skipped (they never unbind an id bound further out)."""
    tokens: dict[str, Token[str | None]] = {}
    for name, value in ids.items():
        if value is not None:
            tokens[name] = _VARS[name].set(str(value))
    return tokens


def unbind(tokens: dict[str, Token[str | None]]) -> None:
    for name, token in tokens.items():
        _VARS[name].reset(token)


def clear() -> None:
    """Unset every id (a worker process between two tasks)."""
    for var in _VARS.values():
        var.set(None)


@contextlib.contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """``with bound(job_id=...):`` the ids for the block only."""
    tokens = bind_ids(**ids)
    try:
        yield
    finally:
        unbind(tokens)
