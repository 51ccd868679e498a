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
import contextlib
import json
import logging
import math
import re
import time
import zlib
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx

from ttc_core.errors import InferenceError, RejectedRequestError, RetryableInferenceError
from ttc_core.inference import ledger
from ttc_core.inference.breaker import CircuitBreaker
from ttc_core.inference.failures import describe_status, describe_transport_error
from ttc_core.inference.fleet import Attempt, Fleet, request_text
from ttc_core.inference.limiter import ConcurrencyLimiter
from ttc_core.inference.llamacpp import NativeRoutes, strip_echo
from ttc_core.inference.redact import upstream_summary
from ttc_core.inference.retry import with_retries
from ttc_core.inference.servers import ServerProfile, profile_for, resolve_profile
from ttc_core.inference.usage import estimate_tokens, read_count
from ttc_core.observability import metrics
from ttc_core.settings import EndpointConfig
from ttc_core.text_safety import clean_text, decode_json_body

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


async def gather_paid(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Like ``asyncio.gather``, but a failure waits for the other requests before it
    propagates: they are being generated (and paid for) anyway, and each one that is
    answered reaches the attempt's usage (:mod:`ttc_core.inference.ledger`) instead of being
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
        #: The endpoint's replicas, their health and the routing policy (one replica: a
        #: fleet of one, routed nowhere else and never probed).
        self.fleet = Fleet(
            name, endpoint, http, {k: v for k, v in headers.items() if k == "Authorization"}
        )
        self._profile: ServerProfile | None = None
        self._probe_lock = asyncio.Lock()
        #: Rendered chat prompts (the server's own template), by messages and switches.
        self._rendered: dict[str, str] = {}
        #: Set when the server turned out to offer no render route.
        self._render_missing = False
        #: Effort values this server refused, and what it is sent instead.
        self._effort_alias: dict[str, str] = {}

    async def aclose(self) -> None:
        """Stop this client's background work (the fleet's health probes)."""
        await self.fleet.aclose()

    async def profile(self) -> ServerProfile:
        """The server's profile: named in the endpoint, or probed once (``server: auto``)."""
        if self._profile is None:
            async with self._probe_lock:
                if self._profile is None:
                    auth = {k: v for k, v in self._headers.items() if k == "Authorization"}
                    endpoint = self.endpoint
                    if self.fleet.is_fleet:  # probe a replica in rotation
                        await self.fleet.sync()
                        endpoint = endpoint.model_copy(update={"base_url": self.fleet.any_url()})
                    self._profile = await resolve_profile(endpoint, self._http, auth)
                    self.fleet.health_path = self.endpoint.health_path or self._profile.health_route
        return self._profile

    async def generate(self, req: GenerationRequest) -> Generation:
        """All ``req.n`` samples, in order; raises InferenceError if a request fails."""
        profile = await self.profile()
        if req.n > 1 and self.max_n > 1:
            await self._recall_n_limit()
        per_request = self.max_n
        if profile.shares_seed_across_n and req.seed is not None:
            # One seed for all n would give n copies of one sample: seed + i each instead
            # (the server's prefix cache still shares the prompt between them).
            per_request = 1
        per_request = min(per_request, self._fleet_share(req.n))
        results = await gather_paid(
            [self._chunk(req, s, k) for s, k in chunked(0, req.n, per_request)]
        )
        choices = [c for gen in results for c in gen.choices]
        return Generation(choices=choices, requests=sum(g.requests for g in results))

    def _fleet_share(self, n: int) -> int:
        """Most samples of one request's ``n`` to put on one replica: a large ``n`` is split
        so that every replica in rotation gets a share (each batch stays full), never into
        pieces of ``routing.split_n_above`` or fewer; a small ``n`` stays whole (its
        samples share one prefill where its prefix is)."""
        floor = self.endpoint.routing.split_n_above
        if not self.fleet.is_fleet or n <= floor:
            return n
        up = sum(1 for r in self.fleet.replicas if r.health.routable()) or 1
        return max(floor, math.ceil(n / up))

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
            parts = await gather_paid(
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
        url = self.fleet.any_url().rstrip("/").removesuffix("/v1") + route
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
        native = self._llamacpp
        if native is not None:  # llama.cpp: rendered once, samples from /completion
            prompt = await native.prompt(req, self._render_llamacpp)
            path, body = native.completion_url, native.body(req, prompt, k, seed)
        else:
            profile = await self.profile()
            rendered = await self._render(req, profile)
            path, body = self._body(req, k, seed, profile, rendered)
            effort = self._effort_alias.get(str(body.get("reasoning_effort")))
            if effort is not None:
                body["reasoning_effort"] = effort

        text = request_text(body)
        #: Replicas this request failed on: its retries go to the others first.
        failed_on: list[str] = []

        async def attempt() -> tuple[Any, float, Attempt]:
            await self.breaker.wait_closed()
            async with (
                self._limiter.slot(
                    self.name, self.endpoint.max_concurrency, self.endpoint.timeout_s + 30
                ),
                self.fleet.route(text, k, failed_on) as held,
                self._replica_slot(held),
            ):
                # Inside the slots: at most max_concurrency requests wait on the budget.
                await self._within_rates(req, k, held)
                began = time.perf_counter()
                try:
                    payload = await self._post(
                        path, body, native=native is not None, base=held.replica.url
                    )
                except RetryableInferenceError as exc:
                    if k > 1 and (limit := n_limit(exc)) is not None:
                        # Older llama.cpp refuses n > 1 with a 500: an answer, not an
                        # outage (retrying it would open the breaker for every n > 1).
                        raise NRejectedError(str(exc), limit=limit, status=exc.status) from exc
                    self.failed_attempts += 1
                    metrics.failed_attempt(self.name, exc)
                    if exc.status != 429:  # busy is not dead
                        self.fleet.failed(held, str(exc))
                        failed_on.append(held.replica.url)
                    if not self.fleet.is_fleet or self.fleet.all_down():
                        # The endpoint as a whole: one replica failing among healthy
                        # ones is the fleet's business, not a reason to stop them all.
                        self.breaker.record_failure()
                    raise
                except RejectedRequestError:
                    self.fleet.succeeded(held)  # it answered: alive
                    raise
                self.fleet.succeeded(held)
                self.breaker.record_success()
                return payload, (time.perf_counter() - began) * 1000, held

        try:
            payload, latency_ms, held = await with_retries(
                attempt, retries=self.endpoint.max_retries, what=f"{self.name}{path}"
            )
        except RejectedRequestError as exc:
            lower = refused_effort(exc, body.get("reasoning_effort"))
            if lower is None:
                raise
            # Older vLLM releases accept low/medium/high only: remember, and send "low".
            log.warning(
                "endpoint %s refused reasoning_effort=%s; sending %s",
                self.name,
                body["reasoning_effort"],
                lower,
            )
            self._effort_alias[str(body["reasoning_effort"])] = lower
            body["reasoning_effort"] = lower
            payload, latency_ms, held = await with_retries(
                attempt, retries=self.endpoint.max_retries, what=f"{self.name}{path}"
            )
        if native is not None:
            generation = self._native_generation(payload, start, k, seed, latency_ms)
        else:
            parsed = self._parse(payload, start, k, seed, latency_ms, req, body)
            generation = self._without_echo(req, parsed)
        # The replica's cache now holds this prompt and what it generated.
        self.fleet.observe(text, k, held, [c.text for c in generation.choices])
        # Paid for, whatever becomes of it (a sibling request failing, a scorer failing).
        ledger.record(
            self.name,
            sum(c.prompt_tokens for c in generation.choices),
            sum(c.completion_tokens for c in generation.choices),
        )
        return generation

    async def _render_llamacpp(self, body: dict[str, Any]) -> Any:
        """POST llama.cpp's ``/apply-template`` (retried; a template error is a 4xx)."""
        native = self._llamacpp
        assert native is not None

        async def attempt() -> Any:
            await self.breaker.wait_closed()
            try:
                payload = await self._post(
                    native.render_url, body, native=True, base=self.fleet.any_url()
                )
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

    def _replica_slot(self, held: Attempt) -> contextlib.AbstractAsyncContextManager[None]:
        """One of the replica's ``replica_max_concurrency`` slots (across workers)."""
        limit = self.endpoint.replica_max_concurrency
        if limit is None:
            return contextlib.nullcontext()
        key = f"{self.name}@{held.replica.url}"
        return self._limiter.slot(key, limit, self.endpoint.timeout_s + 30)

    async def _within_rates(self, req: GenerationRequest, k: int, held: Attempt) -> None:
        """Reserve this request's share of the endpoint's and its replica's rate limits
        (worst case)."""
        ep = self.endpoint
        prompt = req.prompt or render_messages(req.messages)
        tokens = k * req.max_tokens + len(prompt) // 4
        replica = f"{self.name}@{held.replica.url}"
        for key, rpm, tpm in (
            (self.name, ep.requests_per_minute, ep.tokens_per_minute),
            (replica, ep.replica_requests_per_minute, ep.replica_tokens_per_minute),
        ):
            if rpm:
                await self._limiter.take(f"{key}:rpm", 1, rpm)
            if tpm:
                await self._limiter.take(f"{key}:tpm", tokens, tpm)

    async def _post(
        self, path: str, body: dict[str, Any], *, native: bool = False, base: str | None = None
    ) -> Any:
        """POST ``path`` under ``base`` (a replica's base URL; the endpoint's by default).
        ``native``: ``path`` is a whole URL of a server's own route under the endpoint's
        root (moved to ``base``'s), whose answer is returned as it is, not as choices."""
        base = base or self.endpoint.base_url
        if native:
            root = self.endpoint.base_url.rstrip("/").removesuffix("/v1")
            url = base.rstrip("/").removesuffix("/v1") + path.removeprefix(root)
        else:
            url = base.rstrip("/") + path
        try:
            resp = await metrics.inference_request(
                self.name,
                url,
                self.endpoint,
                self._http.post(
                    url, json=body, headers=self._headers, timeout=self.endpoint.timeout_s
                ),
            )
        except httpx.TransportError as exc:
            message = describe_transport_error(exc, url, self.endpoint.timeout_s)
            raise RetryableInferenceError(message) from exc
        status = resp.status_code
        if status == 429 or status >= 500:
            raise RetryableInferenceError(
                describe_status(url, status, self._summary(resp.text, 200)),
                status=status,
                retry_after=parse_retry_after(resp.headers.get("retry-after")),
            )
        if status >= 400:
            raise RejectedRequestError(
                describe_status(url, status, self._summary(resp.text, 300)),
                status=status,
                body=self._summary(resp.text, 2000),
            )
        try:
            # Bytes that are not UTF-8 are the model's, not a broken response: decoded,
            # then replaced (and counted) with the rest of the text in _parse.
            payload = decode_json_body(resp.content)
        except ValueError as exc:
            raise RetryableInferenceError(
                f"POST {url} answered {status} with a body that is not JSON: {resp.content[:120]!r}"
            ) from exc
        if native:
            return payload
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise RetryableInferenceError(f"POST {url} answered {status} without a choices list")
        return payload

    def _summary(self, text: str, limit: int) -> str:
        """Upstream text as tenants may see it: bounded, the endpoint's key redacted."""
        return upstream_summary(text, [self.endpoint.api_key()], limit)

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
        metrics.samples_received(self.name, k)
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


#: How long a learnt ``n`` limit is shared with other workers (a restarted server may
#: have a new ``--parallel``; a stale note costs one refused request).
N_NOTE_TTL_S = 3600


def chunked(start: int, count: int, size: int) -> list[tuple[int, int]]:
    """``(first, k)`` pieces of at most ``size`` covering ``start`` .. ``start + count``."""
    size = max(1, size)
    return [(s, min(size, start + count - s)) for s in range(start, start + count, size)]


def choice_text(choice: dict[str, Any]) -> str:
    if "message" in choice:
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        return content if isinstance(content, str) else str(content or "")
    text = choice.get("text")
    return text if isinstance(text, str) else str(text or "")


#: The next effort down for servers that refuse a value (``minimal`` is newer than the rest).
_EFFORT_FALLBACK = {"minimal": "low", "none": "low", "xhigh": "high", "max": "high"}


def refused_effort(exc: RejectedRequestError, sent: Any) -> str | None:
    """The effort to send instead when a 400 refuses the ``reasoning_effort`` value sent."""
    if not isinstance(sent, str) or sent not in _EFFORT_FALLBACK:
        return None
    body = (exc.body or "").lower()
    return _EFFORT_FALLBACK[sent] if "reasoning_effort" in body and sent in body else None


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
