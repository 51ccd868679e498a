"""Retry policy for inference requests: exponential backoff with full jitter;
``Retry-After`` is honoured (capped); only RetryableInferenceError is retried."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ttc_core.errors import RetryableInferenceError

log = logging.getLogger(__name__)
T = TypeVar("T")

BASE_DELAY_S = 0.2
MAX_DELAY_S = 10.0
MAX_RETRY_AFTER_S = 30.0


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER_S)
    return random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * 2**attempt))


async def with_retries(fn: Callable[[], Awaitable[T]], *, retries: int, what: str) -> T:
    attempt = 0
    while True:
        try:
            return await fn()
        except RetryableInferenceError as exc:
            if attempt >= retries:
                raise
            delay = backoff_delay(attempt, exc.retry_after)
            log.info("%s: %s; retry %d/%d in %.2fs", what, exc, attempt + 1, retries, delay)
            attempt += 1
            await asyncio.sleep(delay)
