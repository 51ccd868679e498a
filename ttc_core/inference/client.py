"""Async OpenAI-compatible inference client (vLLM, SGLang, llama.cpp server, hosted APIs).

One client per endpoint per process, over one pooled ``httpx.AsyncClient``. Sibling
samples go out as one request with ``n`` (they share the prompt's KV cache on the
server); a server that rejects ``n`` gets ``n`` separate requests with consecutive seeds
instead, which on a deterministic server yields the same samples. Every request holds a
slot of the endpoint's ``max_concurrency`` (shared across processes by the limiter).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ttc_core.errors import InferenceError, RejectedRequestError, RetryableInferenceError
from ttc_core.inference.breaker import CircuitBreaker
from ttc_core.inference.limiter import ConcurrencyLimiter
from ttc_core.inference.retry import with_retries
from ttc_core.settings import EndpointConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Sample ``n`` continuations of one prompt (chat ``messages`` or raw ``prompt``)."""

    n: int
    messages: Sequence[dict[str, Any]] | None = None
    prompt: str | None = None
    seed: int | None = None
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 512
    stop: Sequence[str] | None = None
    #: Extra fields for chat requests (e.g. vLLM's ``continue_final_message``).
    extra_body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    """One generated sample with its share of the request's usage."""

    index: int
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    seed: int | None


@dataclass(frozen=True, slots=True)
class Generation:
    choices: list[Choice]
    requests: int


def split_evenly(total: int, weights: Sequence[int]) -> list[int]:
    """Split an integer total in proportion to weights (largest remainders get the
    leftover units); the parts sum to ``total``."""
    if not weights:
        return []
    weight_sum = sum(weights)
    if weight_sum <= 0:
        weights, weight_sum = [1] * len(weights), len(weights)
    parts = [total * w // weight_sum for w in weights]
    by_remainder = sorted(
        range(len(weights)), key=lambda i: (-(total * weights[i] % weight_sum), i)
    )
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


_N_REJECTION = re.compile(
    r"""(?ix) (\bn\b|['"`]n['"`]|number\ of\ (choices|completions))
    .{0,80} (support|must\ be\ 1|only\ 1|not\ allowed|greater\ than\ 1)""",
)


def rejects_n(exc: RejectedRequestError) -> bool:
    """Whether a 4xx says the server does not accept ``n`` > 1 (not some other problem)."""
    body = exc.body or ""
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if isinstance(error, dict):
        if error.get("param") == "n":
            return True
        body = str(error.get("message") or body)
    return bool(_N_REJECTION.search(body))


async def gather_or_cancel(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Like ``asyncio.gather``, but the first failure cancels the rest (freeing their
    endpoint slots) before it propagates."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class InferenceClient:
    def __init__(
        self,
        name: str,
        endpoint: EndpointConfig,
        http: httpx.AsyncClient,
        limiter: ConcurrencyLimiter,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self._http = http
        self._limiter = limiter
        self._n_supported = endpoint.supports_n
        #: Failed attempts that were retried or given up on (for job events and metrics).
        self.failed_attempts = 0
        self.breaker = CircuitBreaker(
            name,
            threshold=endpoint.breaker_threshold,
            cooldown_s=endpoint.breaker_cooldown_s,
        )
        headers = {"Content-Type": "application/json"}
        if key := endpoint.api_key():
            headers["Authorization"] = f"Bearer {key}"
        self._headers = headers

    async def generate(self, req: GenerationRequest) -> Generation:
        """All ``req.n`` samples, in order; raises InferenceError if a request fails."""
        per_request = self.endpoint.max_n_per_request if self._n_supported else 1
        chunks = [
            (start, min(per_request, req.n - start)) for start in range(0, req.n, per_request)
        ]
        results = await gather_or_cancel([self._chunk(req, s, k) for s, k in chunks])
        choices = [c for gen in results for c in gen.choices]
        return Generation(choices=choices, requests=sum(g.requests for g in results))

    async def _chunk(self, req: GenerationRequest, start: int, k: int) -> Generation:
        seed = None if req.seed is None else req.seed + start
        try:
            return await self._request(req, start, k, seed)
        except RejectedRequestError as exc:
            if k == 1 or not rejects_n(exc):
                raise
            log.warning("endpoint %s rejected n=%d (%s); sending n=1 requests", self.name, k, exc)
            self._n_supported = False
            parts = await gather_or_cancel(
                [
                    self._request(req, start + i, 1, None if seed is None else seed + i)
                    for i in range(k)
                ]
            )
            return Generation([c for p in parts for c in p.choices], sum(p.requests for p in parts))

    def _body(self, req: GenerationRequest, k: int, seed: int | None) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "n": k,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
        }
        if seed is not None:
            body["seed"] = seed
        if req.stop:
            body["stop"] = list(req.stop)
        if self.endpoint.api == "chat":
            body["messages"] = list(req.messages or [{"role": "user", "content": req.prompt}])
            if req.extra_body:
                body.update(req.extra_body)
            return "/chat/completions", body
        body["prompt"] = req.prompt if req.prompt is not None else render_messages(req.messages)
        return "/completions", body

    async def _request(
        self, req: GenerationRequest, start: int, k: int, seed: int | None
    ) -> Generation:
        path, body = self._body(req, k, seed)

        async def attempt() -> tuple[dict[str, Any], float]:
            await self.breaker.wait_closed()
            async with self._limiter.slot(
                self.name, self.endpoint.max_concurrency, self.endpoint.timeout_s + 30
            ):
                # Inside the slot: at most max_concurrency requests wait on the budget.
                await self._within_rates(req, k)
                began = time.perf_counter()
                try:
                    payload = await self._post(path, body)
                except RetryableInferenceError:
                    self.failed_attempts += 1
                    self.breaker.record_failure()
                    raise
                self.breaker.record_success()
                return payload, (time.perf_counter() - began) * 1000

        payload, latency_ms = await with_retries(
            attempt, retries=self.endpoint.max_retries, what=f"{self.name}{path}"
        )
        return self._parse(payload, start, k, seed, latency_ms)

    async def _within_rates(self, req: GenerationRequest, k: int) -> None:
        """Reserve this request's share of the endpoint's rate limits (worst case)."""
        if self.endpoint.requests_per_minute:
            await self._limiter.take(f"{self.name}:rpm", 1, self.endpoint.requests_per_minute)
        if self.endpoint.tokens_per_minute:
            prompt = req.prompt or render_messages(req.messages)
            tokens = k * req.max_tokens + len(prompt) // 4
            await self._limiter.take(f"{self.name}:tpm", tokens, self.endpoint.tokens_per_minute)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.endpoint.base_url.rstrip("/") + path
        try:
            resp = await self._http.post(
                url, json=body, headers=self._headers, timeout=self.endpoint.timeout_s
            )
        except httpx.TimeoutException as exc:
            raise RetryableInferenceError(f"timeout after {self.endpoint.timeout_s}s") from exc
        except httpx.TransportError as exc:
            raise RetryableInferenceError(f"transport error: {exc!r}") from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryableInferenceError(
                f"HTTP {resp.status_code}: {resp.text[:200]}",
                status=resp.status_code,
                retry_after=parse_retry_after(resp.headers.get("retry-after")),
            )
        if resp.status_code >= 400:
            raise RejectedRequestError(
                f"HTTP {resp.status_code}: {resp.text[:300]}",
                status=resp.status_code,
                body=resp.text[:2000],
            )
        try:
            payload = resp.json()
        except ValueError as exc:
            raise RetryableInferenceError("malformed response body (not JSON)") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise RetryableInferenceError("malformed response body (no choices)")
        return payload

    def _parse(
        self, payload: dict[str, Any], start: int, k: int, seed: int | None, latency_ms: float
    ) -> Generation:
        raw = sorted(payload["choices"], key=lambda c: c.get("index", 0))
        if len(raw) != k:
            raise InferenceError(f"asked for {k} choices, got {len(raw)}")
        texts = [choice_text(c) for c in raw]
        usage = payload.get("usage") or {}
        prompt_parts = split_evenly(int(usage.get("prompt_tokens") or 0), [1] * k)
        # Servers report completion tokens per request; share them by text length.
        completion_parts = split_evenly(
            int(usage.get("completion_tokens") or 0), [max(1, len(t)) for t in texts]
        )
        choices = [
            Choice(
                index=start + i,
                text=texts[i],
                finish_reason=raw[i].get("finish_reason"),
                prompt_tokens=prompt_parts[i],
                completion_tokens=completion_parts[i],
                latency_ms=latency_ms,
                seed=None if seed is None else seed + i,
            )
            for i in range(k)
        ]
        return Generation(choices=choices, requests=1)


def choice_text(choice: dict[str, Any]) -> str:
    if "message" in choice:
        return str((choice.get("message") or {}).get("content") or "")
    return str(choice.get("text") or "")


def render_messages(messages: Sequence[dict[str, Any]] | None) -> str:
    """Plain rendering of chat messages for the completions API."""
    return "".join(f"{m.get('role', 'user')}: {m.get('content', '')}\n" for m in messages or [])


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
