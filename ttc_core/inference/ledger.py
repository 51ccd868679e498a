"""What one expansion attempt paid for, whatever becomes of it.

Usage that lands on a node (its prompt and completion tokens) is counted when its batch
completes, by summing the batch's nodes. Some paid work never becomes a node: LLM-judge
votes, process and outcome reward-model calls, the answered requests of a batch that then
failed (one request of a fan-out refused, a scorer that failed afterwards), the rounds of
a thought whose answer failed. The inference client and the scorers report every answered
request here, and the batch code adds what no node carries to the job: at completion, or
at once when the attempt fails, so failed and cancelled jobs report what servers were paid.

A :class:`Ledger` is the current attempt's, held in a context variable: tasks an attempt
starts see the same ledger (``asyncio`` copies the context at task creation), while two
batches running concurrently in one process each see their own. Outside an attempt,
:func:`record` does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Ledger",
    "Spend",
    "attempt",
    "current",
    "note_unscorable",
    "record",
    "record_cache_saved",
    "record_stored",
]


@dataclass
class Spend:
    """Answered requests and their tokens, for one endpoint."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, requests: int, prompt_tokens: int, completion_tokens: int) -> None:
        self.requests += requests
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens


@dataclass
class Ledger:
    """Everything an attempt was answered (``paid``, by endpoint name) and the tokens of
    the node rows it stored (``stored``, all on the job's endpoint)."""

    paid: dict[str, Spend] = field(default_factory=dict)
    stored_prompt_tokens: int = 0
    stored_completion_tokens: int = 0
    #: Scoring trouble seen by this attempt: one entry per node scored 0 (see
    #: ``ttc_core.engine.expansion``), ``{"endpoint", "node_id", "reason"}``.
    unscorable: list[dict[str, Any]] = field(default_factory=list)
    #: Requests the expansion cache made unnecessary (``ttc_core.engine.cached_generation``).
    cache_requests: int = 0

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.paid.values())

    def unstored(self, job_endpoint: str) -> dict[str, Spend]:
        """What was paid for and is on no stored node, by endpoint (never negative)."""
        out: dict[str, Spend] = {}
        for name, spend in self.paid.items():
            rest = Spend(spend.requests, spend.prompt_tokens, spend.completion_tokens)
            if name == job_endpoint:
                rest.prompt_tokens = max(0, rest.prompt_tokens - self.stored_prompt_tokens)
                rest.completion_tokens = max(
                    0, rest.completion_tokens - self.stored_completion_tokens
                )
            out[name] = rest
        return out


_CURRENT: ContextVar[Ledger | None] = ContextVar("ttc_ledger", default=None)


def current() -> Ledger | None:
    return _CURRENT.get()


@contextlib.contextmanager
def attempt() -> Iterator[Ledger]:
    """A fresh ledger for the code inside (and the tasks it starts)."""
    ledger = Ledger()
    token = _CURRENT.set(ledger)
    try:
        yield ledger
    finally:
        _CURRENT.reset(token)


def record(endpoint: str, prompt_tokens: int, completion_tokens: int, requests: int = 1) -> None:
    """One answered request (or several) of ``endpoint``, with the tokens it reported."""
    ledger = _CURRENT.get()
    if ledger is not None:
        ledger.paid.setdefault(endpoint, Spend()).add(requests, prompt_tokens, completion_tokens)


def record_stored(rows: Sequence[Mapping[str, Any]]) -> None:
    """Node rows this attempt inserted: their tokens are counted through the nodes."""
    ledger = _CURRENT.get()
    if ledger is not None:
        for row in rows:
            ledger.stored_prompt_tokens += int(row.get("prompt_tokens") or 0)
            ledger.stored_completion_tokens += int(row.get("completion_tokens") or 0)


def note_unscorable(endpoint: str, node_id: str, reason: str) -> None:
    ledger = _CURRENT.get()
    if ledger is not None:
        ledger.unscorable.append({"endpoint": endpoint, "node_id": node_id, "reason": reason})


def record_cache_saved(requests: int) -> None:
    """Requests the expansion cache answered instead of the server."""
    ledger = _CURRENT.get()
    if ledger is not None:
        ledger.cache_requests += requests
