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

from ttc_core import ledger
from ttc_core.errors import InferenceError, RejectedRequestError, RetryableInferenceError
from ttc_core.inference.breaker import CircuitBreaker
from ttc_core.inference.failures import describe_status, describe_transport_error
from ttc_core.inference.limiter import ConcurrencyLimiter
from ttc_core.inference.retry import with_retries
from ttc_core.inference.usage import estimate_tokens, read_count
from ttc_core.settings import EndpointConfig
from ttc_core.text_safety import clean_text, decode_json_body

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
    #: What the client had to fix in this sample's output, for the node's meta:
    #: ``{"sanitized": {"nul": 3}, "usage": {"completion_tokens": "negative (-5); ..."}}``.
    notes: dict[str, Any] | None = None


#: Longest finish reason kept (the column is 32 characters; servers may send anything).
MAX_FINISH_REASON = 32


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


async def gather_paid(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Like ``asyncio.gather``, but a failure waits for the other requests before it
    propagates: they are being generated (and paid for) anyway, and each one that is
    answered reaches the attempt's usage (:mod:`ttc_core.ledger`) instead of being
    cancelled between the server's answer and its parsing. Cancellation from outside
    still cancels them all."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for task in tasks:
        error = task.exception()
        if error is not None:
            raise error
    return [task.result() for task in tasks]


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
        results = await gather_paid([self._chunk(req, s, k) for s, k in chunks])
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
            parts = await gather_paid(
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
        generation = self._parse(payload, start, k, seed, latency_ms, req, body)
        # Paid for, whatever becomes of it (a sibling request failing, a scorer failing).
        ledger.record(
            self.name,
            sum(c.prompt_tokens for c in generation.choices),
            sum(c.completion_tokens for c in generation.choices),
        )
        return generation

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
        except httpx.TransportError as exc:
            message = describe_transport_error(exc, url, self.endpoint.timeout_s)
            raise RetryableInferenceError(message) from exc
        status = resp.status_code
        if status == 429 or status >= 500:
            raise RetryableInferenceError(
                describe_status(url, status, resp.text[:200]),
                status=status,
                retry_after=parse_retry_after(resp.headers.get("retry-after")),
            )
        if status >= 400:
            raise RejectedRequestError(
                describe_status(url, status, resp.text[:300]), status=status, body=resp.text[:2000]
            )
        try:
            # Bytes that are not UTF-8 are the model's, not a broken response: decoded,
            # then replaced (and counted) with the rest of the text in _parse.
            payload = decode_json_body(resp.content)
        except ValueError as exc:
            raise RetryableInferenceError(
                f"POST {url} answered {status} with a body that is not JSON: {resp.content[:120]!r}"
            ) from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise RetryableInferenceError(f"POST {url} answered {status} without a choices list")
        return payload

    def _parse(
        self,
        payload: dict[str, Any],
        start: int,
        k: int,
        seed: int | None,
        latency_ms: float,
        req: GenerationRequest,
        body: dict[str, Any],
    ) -> Generation:
        raw = [c if isinstance(c, dict) else {} for c in payload["choices"]]
        raw.sort(key=_choice_index)
        if len(raw) != k:
            raise InferenceError(
                f"endpoint {self.name!r} answered {len(raw)} choices where {k} were asked for"
            )
        cleaned = [clean_text(choice_text(c)) for c in raw]
        texts = [text for text, _ in cleaned]
        notes: list[dict[str, Any]] = [
            {"sanitized": counts} if counts else {} for _, counts in cleaned
        ]
        usage = payload.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        prompt = req.prompt if req.prompt is not None else render_messages(req.messages)
        # No honest server counts more than the request allowed, or far more prompt
        # tokens than the prompt has characters.
        per_choice = max(
            _int_or_0(body.get("max_tokens")), _int_or_0(body.get("max_completion_tokens"))
        )
        completion_limit = k * per_choice if per_choice else 1 << 62
        prompt_limit = 4 * len(prompt) + 4096
        prompt_total, prompt_why = read_count(usage.get("prompt_tokens"), prompt_limit)
        completion_total, completion_why = read_count(
            usage.get("completion_tokens"), completion_limit
        )
        fixes: dict[str, str] = {}
        if prompt_total is None:
            prompt_total = estimate_tokens(prompt)
            fixes["prompt_tokens"] = f"{prompt_why}; estimated {prompt_total} from the prompt"
        elif prompt_why:
            fixes["prompt_tokens"] = prompt_why
        if completion_total is None:
            completion_total = sum(estimate_tokens(t) for t in texts)
            if per_choice:
                completion_total = min(completion_total, completion_limit)
            fixes["completion_tokens"] = (
                f"{completion_why}; estimated {completion_total} from the text"
            )
        elif completion_why:
            fixes["completion_tokens"] = completion_why
        if fixes:
            log.warning("endpoint %s sent unusable usage: %s", self.name, fixes)
            for note in notes:
                note["usage"] = fixes
        prompt_parts = split_evenly(prompt_total, [1] * k)
        # Servers report completion tokens per request; share them by text length.
        completion_parts = split_evenly(completion_total, [max(1, len(t)) for t in texts])
        choices = [
            Choice(
                index=start + i,
                text=texts[i],
                finish_reason=_finish_reason(raw[i].get("finish_reason")),
                prompt_tokens=prompt_parts[i],
                completion_tokens=completion_parts[i],
                latency_ms=latency_ms,
                seed=None if seed is None else seed + i,
                notes=notes[i] or None,
            )
            for i in range(k)
        ]
        return Generation(choices=choices, requests=1)


def _choice_index(choice: dict[str, Any]) -> int:
    index = choice.get("index")
    return index if isinstance(index, int) else 0


def _int_or_0(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _finish_reason(value: Any) -> str | None:
    if value is None:
        return None
    return clean_text(str(value))[0][:MAX_FINISH_REASON]


def choice_text(choice: dict[str, Any]) -> str:
    if "message" in choice:
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        return content if isinstance(content, str) else str(content or "")
    text = choice.get("text")
    return text if isinstance(text, str) else str(text or "")


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
