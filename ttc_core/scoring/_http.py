"""JSON over HTTP for the reward-model scorers: one POST with the inference retry policy.

Transient failures (429, 5xx, timeouts, transport errors, a body that is not JSON, which is
what a dropped connection leaves) are retried ``retries`` times with the backoff of
:mod:`ttc_core.inference.retry` (``Retry-After`` honoured, capped); other 4xx answers fail
at once. Every failure that ends the call is a :class:`ScorerError` naming the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ttc_core.errors import RetryableInferenceError
from ttc_core.inference import ledger
from ttc_core.inference.client import parse_retry_after
from ttc_core.inference.failures import describe_transport_error
from ttc_core.inference.redact import upstream_summary
from ttc_core.inference.retry import backoff_delay
from ttc_core.inference.usage import read_count
from ttc_core.observability import metrics
from ttc_core.scoring.base import ScorerError
from ttc_core.settings import EndpointConfig
from ttc_core.text_safety import decode_json_body

__all__ = ["Sleep", "describe", "endpoint_root", "post_json", "record_usage", "shorten"]

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


def record_usage(name: str, payload: Any) -> None:
    """Count one answered reward-model request and the tokens its ``usage`` reports
    (pooling and classify answers carry ``prompt_tokens``; unbelievable numbers count 0)."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    prompt = read_count(usage.get("prompt_tokens"), 1 << 40)[0] or 0
    completion = read_count(usage.get("completion_tokens"), 1 << 40)[0] or 0
    ledger.record(name, prompt, completion)


def endpoint_root(endpoint: EndpointConfig) -> str:
    """``base_url`` without a trailing slash or ``/v1`` (so ``/v1`` is never doubled)."""
    return endpoint.base_url.rstrip("/").removesuffix("/v1")


def _headers(endpoint: EndpointConfig) -> dict[str, str]:
    key = endpoint.api_key()
    return {"Authorization": f"Bearer {key}"} if key else {}


async def _attempt(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    endpoint: EndpointConfig,
    what: str,
    name: str,
) -> Any:
    try:
        # Latency, outcome and a GenAI client span, as for generation requests.
        response = await metrics.inference_request(
            name,
            url,
            endpoint,
            client.post(url, json=body, headers=_headers(endpoint), timeout=endpoint.timeout_s),
        )
    except httpx.TransportError as exc:
        message = describe_transport_error(exc, url, endpoint.timeout_s)
        raise RetryableInferenceError(message) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ScorerError(f"{what}: request failed: {type(exc).__name__}: {exc}") from exc
    status = response.status_code
    if status < 400:
        with contextlib.suppress(ValueError):
            return response.json()
    upstream = upstream_summary(response.text, [endpoint.api_key()])  # bounded, redacted
    if status == 429 or status >= 500:
        raise RetryableInferenceError(
            f"HTTP {status}: {upstream!r}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status >= 400:
        raise ScorerError(f"{what} refused the request: HTTP {status}: {upstream!r}")
    try:
        return decode_json_body(response.content)
    except ValueError:
        raise RetryableInferenceError(
            f"answered {status} with a body that is not JSON: {upstream!r}",
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
    name: str | None = None,
) -> Any:
    """The decoded JSON answer to ``POST url`` with ``body``, retried per the module doc.

    ``what`` names the endpoint in messages, e.g. ``"PRM endpoint 'prm' (http://h/pooling)"``.
    ``name``: the endpoint's name in the settings; the answer is recorded under it in the
    current attempt's usage (:mod:`ttc_core.inference.ledger`).
    """
    retries = endpoint.max_retries
    attempt = 0
    name = name or endpoint.model
    while True:
        try:
            payload = await _attempt(client, url, body, endpoint, what, name)
            record_usage(name, payload)
            return payload
        except RetryableInferenceError as exc:
            if attempt >= retries:
                tries = attempt + 1
                raise ScorerError(
                    f"{what} failed after {tries} attempt{'s' if tries != 1 else ''}; "
                    f"last error: {exc}"
                ) from exc
            await sleep(backoff_delay(attempt, exc.retry_after))
            attempt += 1
