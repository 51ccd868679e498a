"""JSON over HTTP for the reward-model scorers: one POST with the inference retry policy.

Transient failures (429, 5xx, timeouts, transport errors, a body that is not JSON, which is
what a dropped connection leaves) are retried ``retries`` times with the backoff of
:mod:`ttc_core.inference.retry` (``Retry-After`` honoured, capped); other 4xx answers fail
at once. Every failure that ends the call is a :class:`ScorerError` naming the endpoint.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ttc_core.errors import RetryableInferenceError
from ttc_core.inference.client import parse_retry_after
from ttc_core.inference.retry import backoff_delay
from ttc_core.scoring.base import ScorerError
from ttc_core.settings import EndpointConfig

__all__ = ["Sleep", "describe", "endpoint_root", "post_json", "shorten"]

Sleep = Callable[[float], Awaitable[None]]


def shorten(s: str, limit: int = 200) -> str:
    return s if len(s) <= limit else s[: limit - 1] + "…"


def describe(value: Any, limit: int = 120) -> str:
    """A short JSON-ish rendering of ``value`` for error messages."""
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return shorten(text, limit)


def endpoint_root(endpoint: EndpointConfig) -> str:
    """``base_url`` without a trailing slash or ``/v1`` (so ``/v1`` is never doubled)."""
    return endpoint.base_url.rstrip("/").removesuffix("/v1")


def _headers(endpoint: EndpointConfig) -> dict[str, str]:
    key = endpoint.api_key()
    return {"Authorization": f"Bearer {key}"} if key else {}


async def _attempt(
    client: httpx.AsyncClient, url: str, body: Any, endpoint: EndpointConfig, what: str
) -> Any:
    try:
        response = await client.post(
            url, json=body, headers=_headers(endpoint), timeout=endpoint.timeout_s
        )
    except httpx.TimeoutException as exc:
        raise RetryableInferenceError(f"timeout after {endpoint.timeout_s:g}s") from exc
    except httpx.TransportError as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise RetryableInferenceError(f"transport error: {detail}") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ScorerError(f"{what}: request failed: {type(exc).__name__}: {exc}") from exc
    status = response.status_code
    if status == 429 or status >= 500:
        raise RetryableInferenceError(
            f"HTTP {status}: {shorten(response.text)!r}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status >= 400:
        raise ScorerError(f"{what} refused the request: HTTP {status}: {shorten(response.text)!r}")
    try:
        return response.json()
    except ValueError:
        raise RetryableInferenceError(
            f"answered {status} with a body that is not JSON: {shorten(response.text)!r}",
            status=status,
        ) from None


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    *,
    endpoint: EndpointConfig,
    what: str,
    sleep: Sleep = asyncio.sleep,
) -> Any:
    """The decoded JSON answer to ``POST url`` with ``body``, retried per the module doc.

    ``what`` names the endpoint in messages, e.g. ``"PRM endpoint 'prm' (http://h/pooling)"``.
    """
    retries = endpoint.max_retries
    attempt = 0
    while True:
        try:
            return await _attempt(client, url, body, endpoint, what)
        except RetryableInferenceError as exc:
            if attempt >= retries:
                tries = attempt + 1
                raise ScorerError(
                    f"{what} failed after {tries} attempt{'s' if tries != 1 else ''}; "
                    f"last error: {exc}"
                ) from exc
            await sleep(backoff_delay(attempt, exc.retry_after))
            attempt += 1
