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
from ttc_core.inference.servers import ServerProfile, profile_for, resolve_profile
from ttc_core.settings import EndpointConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Fields only the chat API knows; dropped when a chat is sent rendered to /completions.
_CHAT_ONLY = frozenset(
    {"chat_template_kwargs", "continue_final_message", "add_generation_prompt", "chat_template"}
)
#: Rendered chat prompts kept per client (one per job prompt and template switches).
RENDER_CACHE_SIZE = 512


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
    #: Extra fields for chat requests (e.g. reasoning controls).
    extra_body: dict[str, Any] | None = None
    #: The assistant turn so far (a path of steps, an open thought): the samples continue
    #: it exactly. ``messages`` is then the conversation before that turn; how it is sent
    #: depends on the server (``ttc_core.inference.servers``: rendered with the server's
    #: template and continued on the completions API, or a final assistant message).
    continue_text: str | None = None


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
        #: llama.cpp's native routes, made once the profile says the server is llama.cpp.
        self._native: NativeRoutes | None = None
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
        self._profile: ServerProfile | None = None
        self._probe_lock = asyncio.Lock()
        #: Rendered chat prompts (the server's own template), by messages and switches.
        self._rendered: dict[str, str] = {}
        #: Set when the server turned out to offer no render route.
        self._render_missing = False

    async def profile(self) -> ServerProfile:
        """The server's profile: named in the endpoint, or probed once (``server: auto``)."""
        if self._profile is None:
            async with self._probe_lock:
                if self._profile is None:
                    auth = {k: v for k, v in self._headers.items() if k == "Authorization"}
                    self._profile = await resolve_profile(self.endpoint, self._http, auth)
        return self._profile

    async def generate(self, req: GenerationRequest) -> Generation:
        """All ``req.n`` samples, in order; raises InferenceError if a request fails."""
        profile = await self.profile()
        per_request = self.max_n
        if profile.shares_seed_across_n and req.seed is not None:
            # One seed for all n would give n copies of one sample: seed + i each instead
            # (the server's prefix cache still shares the prompt between them).
            per_request = 1
        elif req.n > 1 and per_request > 1:
            await self._recall_n_limit()
            per_request = self.max_n
        results = await gather_or_cancel(
            [self._chunk(req, s, k) for s, k in chunked(0, req.n, per_request)]
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

    def _body(
        self,
        req: GenerationRequest,
        k: int,
        seed: int | None,
        profile: ServerProfile | None = None,
        rendered: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """The route and body of one request. ``rendered``: the chat as the server's template
        renders it (see :meth:`_render`), which turns a continuation into a completion."""
        profile = profile or self._profile or profile_for(self.endpoint, "generic")
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
        if self.endpoint.api == "chat" and rendered is not None:
            # The prompt exactly as the server's template renders it, then the turn so far
            # appended untouched: no template trims or re-renders it.
            body["prompt"] = join_turn(
                rendered, req.continue_text or "", self.endpoint.reasoning.think_open
            )
            body["add_special_tokens"] = False  # the rendered prompt has them already
            body.update({k: v for k, v in (req.extra_body or {}).items() if k not in _CHAT_ONLY})
            return "/completions", body
        if self.endpoint.api == "chat":
            messages = list(req.messages or [{"role": "user", "content": req.prompt}])
            extra = dict(req.extra_body or {})
            if req.continue_text is not None:
                messages.append({"role": "assistant", "content": req.continue_text})
                if profile.continuation == "continue_final_message" or (
                    profile.continuation == "render" and self._render_missing
                ):
                    extra.setdefault("continue_final_message", True)
                    extra.setdefault("add_generation_prompt", False)
            if not profile.continue_final_message:  # hosted APIs refuse vLLM's fields
                extra.pop("continue_final_message", None)
                extra.pop("add_generation_prompt", None)
            body["messages"] = messages
            body.update(extra)
            return "/chat/completions", body
        if req.prompt is not None:
            body["prompt"] = req.prompt
        else:
            body["prompt"] = render_messages(req.messages) + (req.continue_text or "")
        return "/completions", body

    async def _render(self, req: GenerationRequest, profile: ServerProfile) -> str | None:
        """The chat before the continued turn as the server's own template renders it, with
        the generation prompt, as text (cached per client); None when the request continues
        nothing, or the server offers no render route.

        vLLM's ``/tokenize`` takes chat messages and renders them with the model's template
        (``add_generation_prompt``, ``chat_template_kwargs``), and ``/detokenize`` turns the
        ids back into text with the special tokens kept: both long-standing vLLM routes
        (its newer ``/v1/chat/completions/render`` answers token ids only)."""
        if (
            req.continue_text is None
            or self.endpoint.api != "chat"
            or profile.continuation != "render"
            or self._render_missing
        ):
            return None
        kwargs = (req.extra_body or {}).get("chat_template_kwargs") or {}
        messages = list(req.messages or [{"role": "user", "content": req.prompt or ""}])
        key = json.dumps([messages, kwargs], sort_keys=True, default=str)
        cached = self._rendered.get(key)
        if cached is not None:
            return cached
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": messages,
            "add_generation_prompt": True,
        }
        if kwargs:
            body["chat_template_kwargs"] = kwargs
        prompt = None
        tokens = await self._render_call("/tokenize", body)
        ids = tokens.get("tokens") if isinstance(tokens, dict) else None
        if isinstance(ids, list) and ids:
            text = await self._render_call(
                "/detokenize", {"model": self.endpoint.model, "tokens": ids}
            )
            prompt = rendered_prompt(text)
        if prompt is None:
            log.warning(
                "endpoint %s offers no usable chat render route; continuing turns with "
                "continue_final_message instead",
                self.name,
            )
            self._render_missing = True
            return None
        if len(self._rendered) >= RENDER_CACHE_SIZE:
            self._rendered.pop(next(iter(self._rendered)))
        self._rendered[key] = prompt
        return prompt

    async def _render_call(self, route: str, body: dict[str, Any]) -> Any:
        """One call of a render route at the server's root, retried like generation."""

        async def attempt() -> dict[str, Any] | list[Any] | None:
            await self.breaker.wait_closed()
            try:
                return await self._post_render(route, body)
            except RetryableInferenceError:
                self.breaker.record_failure()
                raise

        return await with_retries(
            attempt, retries=self.endpoint.max_retries, what=f"{self.name}{route}"
        )

    async def _post_render(
        self, route: str, body: dict[str, Any]
    ) -> dict[str, Any] | list[Any] | None:
        """POST a render route; None when the server has none (404, 405, 501)."""
        url = self.endpoint.base_url.rstrip("/").removesuffix("/v1") + route
        try:
            resp = await self._http.post(
                url, json=body, headers=self._headers, timeout=self.endpoint.timeout_s
            )
        except httpx.TimeoutException as exc:
            raise RetryableInferenceError(f"timeout after {self.endpoint.timeout_s}s") from exc
        except httpx.TransportError as exc:
            raise RetryableInferenceError(f"transport error: {exc!r}") from exc
        if resp.status_code in (404, 405, 501):
            return None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RetryableInferenceError(
                f"HTTP {resp.status_code} from {route}: {resp.text[:200]}",
                status=resp.status_code,
                retry_after=parse_retry_after(resp.headers.get("retry-after")),
            )
        if resp.status_code >= 400:
            raise RejectedRequestError(
                f"HTTP {resp.status_code} from {route}: {resp.text[:300]}",
                status=resp.status_code,
                body=resp.text[:2000],
            )
        try:
            payload = resp.json()
        except ValueError:
            return None
        return payload if isinstance(payload, dict | list) else None

    async def _request(
        self, req: GenerationRequest, start: int, k: int, seed: int | None
    ) -> Generation:
        profile = await self.profile()
        native = self._native_routes(profile)
        if native is not None:  # llama.cpp: rendered once, samples from /completion
            prompt = await native.prompt(req, self._render_llamacpp)
            path, body = native.completion_url, native.body(req, prompt, k, seed)
        else:
            rendered = await self._render(req, profile)
            path, body = self._body(req, k, seed, profile, rendered)

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
        return self._without_echo(req, generation, profile)

    def _native_routes(self, profile: ServerProfile) -> NativeRoutes | None:
        """llama.cpp's native routes where the profile uses them (``native_completion``)."""
        if not profile.native_completion:
            return None
        if self._native is None:
            self._native = NativeRoutes(
                self.endpoint.base_url, self.endpoint.api, self.endpoint.reasoning.think_open
            )
        return self._native

    async def _render_llamacpp(self, body: dict[str, Any]) -> Any:
        """The chat rendered by llama.cpp's own template (``POST /apply-template``)."""
        payload = await self._render_call("/apply-template", body)
        if payload is None:
            raise InferenceError(
                f"endpoint {self.name}: llama.cpp answered no /apply-template route (an "
                "older build?); set server_overrides.native_completion to false"
            )
        return payload

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

    def _without_echo(
        self, req: GenerationRequest, generation: Generation, profile: ServerProfile
    ) -> Generation:
        """The continued turn removed from the front of each choice, where the server
        echoes it (``echoes_prefill``: llama.cpp's chat route answers prefill + new tokens;
        vLLM the new tokens only)."""
        if not profile.echoes_prefill or self.endpoint.api != "chat":
            return generation
        prefill = req.continue_text
        if prefill is None and req.messages and req.messages[-1].get("role") == "assistant":
            prefill = str(req.messages[-1].get("content") or "")
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


def rendered_prompt(payload: Any) -> str | None:
    """The text in ``/detokenize``'s answer (``{"prompt": ...}``), or None."""
    value = payload.get("prompt") if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value else None


def join_turn(rendered: str, text: str, think_open: str | None) -> str:
    """``rendered`` (ending with the assistant's generation prompt) and the turn so far. A
    template whose generation prompt already opens the thought (``...assistant\n<think>\n``)
    must not get a second ``<think>``."""
    if think_open and text.startswith(think_open):
        tail = rendered.rstrip("\n")
        if tail.endswith(think_open):
            return tail + text[len(think_open) :]
    return rendered + text


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
