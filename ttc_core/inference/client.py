"""Async OpenAI-compatible inference client (vLLM, SGLang, llama.cpp server, hosted APIs).

One client per endpoint per process, over one pooled ``httpx.AsyncClient``. Sibling
samples go out as one request with ``n`` (they share the prompt's KV cache on the
server); choice i of a request seeded s is the sample of seed s + i (vLLM's and
llama.cpp's convention). A server that rejects ``n`` gets smaller requests with the same
seeds instead, which on a deterministic server yields the same samples: as large as its
message allows (llama.cpp caps ``n`` at ``--parallel`` and says so), else ``n=1``. The
limit learnt is kept per endpoint for the process (and across workers through the
limiter's notes, where it keeps any), so later requests go straight to the right size; a
rejection of ``n`` is not a failure of the server (no retry, no breaker count). Every
request holds a slot of the endpoint's ``max_concurrency`` (shared across processes by the
limiter).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import zlib
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx

from ttc_core.errors import InferenceError, RejectedRequestError, RetryableInferenceError
from ttc_core.inference.breaker import CircuitBreaker
from ttc_core.inference.limiter import ConcurrencyLimiter
from ttc_core.inference.llamacpp import NativeRoutes, strip_echo
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
#: llama.cpp before ``n`` support (HTTP 500): "Only one completion choice is allowed".
_ONE_CHOICE = re.compile(r"(?i)only\ one\ completion\ choice")
#: A rejection that names ``n`` (or llama.cpp's ``n_cmpl``) and a range or maximum:
#: llama.cpp's "Field 'n': Value must be between 1 <= value <= 4, but got 16", OpenAI's
#: "Invalid 'n': integer above maximum value. Expected a value <= 128, but got 200".
_N_RANGE = re.compile(
    r"""(?ix) (?:['"`](?:n|n_cmpl)['"`]|\bfield\ n\b)
    .{0,120}? (?:<=\s*value\s*<=|<=|at\ most|maximum\ (?:value\ )?(?:of\ |is\ )?)\s*(\d+)""",
)


def _error_message(body: str) -> tuple[str, Any]:
    """The error message in an OpenAI-style error body (or the body), and its ``param``."""
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if isinstance(error, dict):
        return str(error.get("message") or body), error.get("param")
    return body, None


def n_limit(exc: InferenceError) -> int | None:
    """The largest ``n`` a server's refusal of ``n`` allows (1 when it names none), or None
    when ``exc`` is about something else.

    Recognized: a 4xx whose ``param`` is ``n`` or whose message says ``n`` is not
    supported or names its maximum (llama.cpp: "Field 'n': Value must be between 1 <=
    value <= N, but got K", no ``param``), and older llama.cpp's HTTP 500 "Only one
    completion choice is allowed" (a refusal, though sent as a server error).
    """
    if isinstance(exc, NRejectedError):
        return exc.limit
    if isinstance(exc, RejectedRequestError):
        message, param = _error_message(exc.body or "")
    elif isinstance(exc, RetryableInferenceError) and exc.status == 500:
        message, param = str(exc), None
        if not _ONE_CHOICE.search(message):
            return None
    else:
        return None
    if _ONE_CHOICE.search(message):
        return 1
    if match := _N_RANGE.search(message):
        return max(1, int(match.group(1)))
    if param == "n" or _N_REJECTION.search(message):
        return 1
    return None


def rejects_n(exc: InferenceError) -> bool:
    """Whether an error says the server does not accept this ``n`` (not some other
    problem): see :func:`n_limit`."""
    return n_limit(exc) is not None


class NRejectedError(RejectedRequestError):
    """The server refused a request's ``n`` (raised instead of a retryable 500, so that it
    is neither retried nor counted by the breaker)."""

    def __init__(self, message: str, *, limit: int, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.limit = limit


#: ``n`` limits learnt from refusals, per (endpoint name, base URL), for this process.
_N_LIMITS: dict[tuple[str, str], int] = {}


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
        self._n_key = (name, endpoint.base_url)
        #: Most ``n`` one request may carry: the endpoint's setting, lowered by what the
        #: server's refusals said (learnt once per process, see :meth:`_learn_n_limit`).
        self.max_n = min(
            endpoint.max_n_per_request if endpoint.supports_n else 1,
            _N_LIMITS.get(self._n_key, endpoint.max_n_per_request),
        )
        self._n_note_checked = False
        #: llama.cpp's native routes, used for every generation on a llama.cpp endpoint.
        self._llamacpp = (
            NativeRoutes(endpoint.base_url, endpoint.api, endpoint.reasoning.think_open)
            if getattr(endpoint, "server", None) == "llamacpp"
            else None
        )
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
        if req.n > 1 and self.max_n > 1:
            await self._recall_n_limit()
        results = await gather_or_cancel(
            [self._chunk(req, s, k) for s, k in chunked(0, req.n, self.max_n)]
        )
        choices = [c for gen in results for c in gen.choices]
        return Generation(choices=choices, requests=sum(g.requests for g in results))

    async def _chunk(self, req: GenerationRequest, start: int, k: int) -> Generation:
        """Samples ``start`` .. ``start + k - 1`` of ``req`` in one request (seeded
        ``req.seed + start``), or in smaller ones if the server refuses this ``n``."""
        seed = None if req.seed is None else req.seed + start
        try:
            return await self._request(req, start, k, seed)
        except RejectedRequestError as exc:
            limit = n_limit(exc) if k > 1 else None
            if limit is None:
                raise
            # Strictly smaller than what was refused, whatever the message claimed.
            size = min(limit, k - 1, self.max_n)
            log.warning(
                "endpoint %s refused n=%d (%s); sending at most n=%d per request",
                self.name,
                k,
                exc,
                size,
            )
            await self._learn_n_limit(size)
            parts = await gather_or_cancel(
                [self._chunk(req, s, part) for s, part in chunked(start, k, size)]
            )
            return Generation([c for p in parts for c in p.choices], sum(p.requests for p in parts))

    async def _learn_n_limit(self, limit: int) -> None:
        """Remember ``limit`` for this endpoint: in this process, and for other workers
        through the limiter's notes (where it keeps them)."""
        if limit >= self.max_n:
            return
        self.max_n = limit
        _N_LIMITS[self._n_key] = min(limit, _N_LIMITS.get(self._n_key, limit))
        note = getattr(self._limiter, "set_note", None)
        if note is not None:
            try:
                await note(self._n_note_key, str(limit), N_NOTE_TTL_S)
            except Exception as exc:  # a note is an optimization only
                log.info("endpoint %s: n limit not shared (%s)", self.name, exc)

    async def _recall_n_limit(self) -> None:
        """Take a limit another worker learnt (once per client)."""
        if self._n_note_checked:
            return
        self._n_note_checked = True
        note = getattr(self._limiter, "get_note", None)
        if note is None:
            return
        try:
            value = await note(self._n_note_key)
        except Exception as exc:  # a note is an optimization only
            log.info("endpoint %s: n limit not read (%s)", self.name, exc)
            return
        if value is not None and str(value).isdigit() and int(value) >= 1:
            self.max_n = min(self.max_n, int(value))
            _N_LIMITS[self._n_key] = self.max_n

    @property
    def _n_note_key(self) -> str:
        return f"n_limit:{self.name}:{zlib.crc32(self.endpoint.base_url.encode()):08x}"

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
        native = self._llamacpp
        if native is not None:  # llama.cpp: rendered once, samples from /completion
            prompt = await native.prompt(req, self._render_llamacpp)
            path, body = native.completion_url, native.body(req, prompt, k, seed)
        else:
            path, body = self._body(req, k, seed)

        async def attempt() -> tuple[Any, float]:
            await self.breaker.wait_closed()
            async with self._limiter.slot(
                self.name, self.endpoint.max_concurrency, self.endpoint.timeout_s + 30
            ):
                # Inside the slot: at most max_concurrency requests wait on the budget.
                await self._within_rates(req, k)
                began = time.perf_counter()
                try:
                    payload = await self._post(path, body, native=native is not None)
                except RetryableInferenceError as exc:
                    if k > 1 and (limit := n_limit(exc)) is not None:
                        # Older llama.cpp refuses n > 1 with a 500: an answer, not an
                        # outage (retrying it would open the breaker for every n > 1).
                        raise NRejectedError(str(exc), limit=limit, status=exc.status) from exc
                    self.failed_attempts += 1
                    self.breaker.record_failure()
                    raise
                self.breaker.record_success()
                return payload, (time.perf_counter() - began) * 1000

        payload, latency_ms = await with_retries(
            attempt, retries=self.endpoint.max_retries, what=f"{self.name}{path}"
        )
        if native is not None:
            return self._native_generation(payload, start, k, seed, latency_ms)
        generation = self._parse(payload, start, k, seed, latency_ms)
        return self._without_echo(req, generation)

    async def _render_llamacpp(self, body: dict[str, Any]) -> Any:
        """POST llama.cpp's ``/apply-template`` (retried; a template error is a 4xx)."""
        native = self._llamacpp
        assert native is not None

        async def attempt() -> Any:
            await self.breaker.wait_closed()
            try:
                payload = await self._post(native.render_url, body, native=True)
            except RetryableInferenceError:
                self.failed_attempts += 1
                self.breaker.record_failure()
                raise
            self.breaker.record_success()
            return payload

        return await with_retries(
            attempt, retries=self.endpoint.max_retries, what=f"{self.name}/apply-template"
        )

    def _native_generation(
        self, payload: Any, start: int, k: int, seed: int | None, latency_ms: float
    ) -> Generation:
        """Choices from llama.cpp's ``/completion`` results: each sample's own completion
        tokens (its OpenAI routes count the first sample's only), the prompt shared out."""
        prompt_tokens, samples = NativeRoutes.samples(payload, k)
        prompt_parts = split_evenly(prompt_tokens, [1] * k)
        choices = [
            Choice(
                index=start + i,
                text=sample.text,
                finish_reason=sample.finish_reason,
                prompt_tokens=prompt_parts[i],
                completion_tokens=sample.completion_tokens,
                latency_ms=latency_ms,
                seed=None if seed is None else seed + i,
            )
            for i, sample in enumerate(samples)
        ]
        return Generation(choices=choices, requests=1)

    def _without_echo(self, req: GenerationRequest, generation: Generation) -> Generation:
        """A continued assistant message's text removed from the front of each choice,
        where the server echoes it (llama.cpp's chat route returns prefill + new tokens;
        vLLM the new tokens only, which never start with the whole prefill)."""
        if self.endpoint.api != "chat" or not req.messages:
            return generation
        last = req.messages[-1]
        prefill = str(last.get("content") or "") if last.get("role") == "assistant" else ""
        if not prefill:
            return generation
        choices = [replace(c, text=strip_echo(c.text, prefill)) for c in generation.choices]
        return Generation(choices=choices, requests=generation.requests)

    async def _within_rates(self, req: GenerationRequest, k: int) -> None:
        """Reserve this request's share of the endpoint's rate limits (worst case)."""
        if self.endpoint.requests_per_minute:
            await self._limiter.take(f"{self.name}:rpm", 1, self.endpoint.requests_per_minute)
        if self.endpoint.tokens_per_minute:
            prompt = req.prompt or render_messages(req.messages)
            tokens = k * req.max_tokens + len(prompt) // 4
            await self._limiter.take(f"{self.name}:tpm", tokens, self.endpoint.tokens_per_minute)

    async def _post(self, path: str, body: dict[str, Any], *, native: bool = False) -> Any:
        """POST ``path`` under the base URL (``native``: ``path`` is a whole URL of a
        server's own route, whose answer is returned as it is, not as OpenAI choices)."""
        url = path if native else self.endpoint.base_url.rstrip("/") + path
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
        if native:
            return payload
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


#: How long a learnt ``n`` limit is shared with other workers (a restarted server may
#: have a new ``--parallel``; a stale note costs one refused request).
N_NOTE_TTL_S = 3600


def chunked(start: int, count: int, size: int) -> list[tuple[int, int]]:
    """``(first, k)`` pieces of at most ``size`` covering ``start`` .. ``start + count``."""
    size = max(1, size)
    return [(s, min(size, start + count - s)) for s in range(start, start + count, size)]


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
