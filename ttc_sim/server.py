"""The simulated OpenAI-compatible inference and reward-model server (an ASGI application).

Routes
------
``POST /v1/completions``, ``POST /v1/chat/completions``
    OpenAI request and response shapes (see :mod:`ttc_sim.openai_api`), streaming included.
``GET /v1/models``
    The usual model names (any name is accepted on requests).
``POST /classify`` (also ``/v1/classify``)
    vLLM's classify API: ``{"model", "input": str | [str]}`` -> ``{"id", "object": "list",
    "created", "model", "data": [{"index", "label", "probs": [p_bad, p_good],
    "num_classes": 2}], "usage"}``; each input is a prompt followed by its response.
``POST /v1/reward`` (also ``/reward``)
    ``{"prompt": str, "responses": [str], "model"?}`` -> ``{"scores": [float]}``.
``POST /pooling`` (also ``/v1/pooling``)
    vLLM's pooling API as served for a step-tag process reward model (Qwen2.5-Math-PRM):
    ``{"model", "input": str | [str]}``, each input the templated question followed by the
    steps each ending with ``<extra_0>``; or ``{"model", "messages": [..., {"role": "user",
    "content": question}, {"role": "assistant", "content": "step1<extra_0>step2<extra_0>"}]}``
    -> ``{"id", "object": "list", "created", "model", "data": [{"index", "object": "pooling",
    "data": [[p_bad, p_good], ...]}], "usage": {"prompt_tokens", "total_tokens"}}`` with one
    pair per ``<extra_0>`` tag (see :mod:`ttc_sim.prm`).
``POST /v1/prm``
    ``{"prompt": str, "steps": [str], "model"?}`` -> ``{"step_scores": [float]}``, or a batch
    ``{"items": [{"prompt", "steps"}, ...], "model"?}`` -> ``{"results": [{"step_scores"}]}``.
``GET /health``; ``GET /metrics`` (JSON, or Prometheus text with ``?format=prometheus``,
with vLLM's metric names where vLLM has one); ``POST /metrics/reset``; ``POST
/reset_prefix_cache`` (vLLM's route: empties the prefix cache).

Latency: each generated sequence waits for one of ``slots`` (FIFO) and holds it for
``base_latency_s + per_token_latency_s * completion_tokens``; a request with ``n=k`` runs its
``k`` sequences concurrently and answers when all are done (streamed tokens arrive as they are
"generated": the first after ``base_latency_s``, then one per ``per_token_latency_s``). The
prompt's tokens missing from the server's prefix cache are prefilled first (see
:mod:`ttc_sim.kv`), and ``batching: continuous`` slows decoding as the batch grows.

Faults: one uniform draw per model request (generation and reward routes) from
``random.Random(fault_seed)`` decides: a 500 with an error body, a 429 with ``Retry-After``, a
hang of ``hang_s`` (then a normal answer; ended early when the server stops), a malformed body
(200, not JSON; for streams, a broken event), or a reset (SO_LINGER 0 and ``abort()`` on the
uvicorn transport: the client sees the connection reset with no response; see
:meth:`ttc_sim.asgi.Exchange.reset`). Metrics count a reset under status 0.

Judges: a generation request whose prompt holds the marker line of one of ttc's value,
critique or revision templates is answered by :mod:`ttc_sim.judges` (one vote, critique or
revised solution per choice) instead of a plain sample.

Sampling: choice ``i`` uses seed ``seed + i`` (a random seed when ``seed`` is absent);
``temperature=0`` is greedy and uses seed 0 for every choice.

Strictness of real servers (``server``, ``chat_template``, ``max_model_len``; see
:mod:`ttc_sim.servers`, :mod:`ttc_sim.templates`) and hostile output (``output_*``,
``usage_style``; see :mod:`ttc_sim.hostile`) are modes of the same routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .asgi import ClientGone, Exchange, HTTPError, Receive, Scope, Send, dumps
from .config import ModelNameError, SimConfig, config_for_model
from .hostile import corrupt_tokens, garbage_tokens, to_wire, usage_as_sent
from .judges import answer_judge, parse_judge_prompt
from .kv import KVEngine
from .metrics import Metrics
from .model import generate, token_logprobs
from .openai_api import (
    ChoiceOut,
    GenRequest,
    Kind,
    chunk,
    chunk_choice,
    final_chunk_choice,
    parse_request,
    response_body,
    usage,
    with_cached,
)
from .prm import parse_pooling_text, step_scores, tagged_steps
from .reward import score_responses, score_text
from .rng import rng_for, stable_seed
from .servers import n_rejection, profile
from .tasks import Problem, ProblemIndex, default_index
from .templates import EMPTY_THINK, TemplateError, assistant_turn, render
from .tokens import count_tokens, split_tokens

log = logging.getLogger("ttc_sim")

MODEL_NAMES = (
    "sim",
    "sim-gsm8k",
    "sim-synthetic",
    "sim-choice",
    "sim-game24",
    "sim-rm",
    "sim-prm",
)
FAULT_KINDS = ("500", "429", "hang", "malformed", "reset")

Handler = Callable[[Exchange], Awaitable[None]]

_MALFORMED = b'{"id":"cmpl-sim-malformed","object":"text_completion","choices":[{"text":"The fi'


class SimApp:
    """The ASGI application; ``metrics`` and ``config`` are readable from outside."""

    def __init__(self, config: SimConfig | None = None, *, index: ProblemIndex | None = None):
        self.config = config or SimConfig()
        self.metrics = Metrics()
        self.kv = KVEngine(self.config)
        self.index = index or default_index()
        self._fault_rng = random.Random(self.config.fault_seed)
        self._seed_rng = random.Random()
        self._slots: asyncio.Semaphore | None = None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._models: dict[str, SimConfig] = {}
        self._ids = itertools.count()
        self._id_prefix = uuid.uuid4().hex[:10]
        self._routes: dict[str, dict[str, Handler]] = {
            "/v1/completions": {"POST": self._completions},
            "/v1/chat/completions": {"POST": self._chat},
            "/v1/models": {"GET": self._list_models},
            "/classify": {"POST": self._classify},
            "/v1/classify": {"POST": self._classify},
            "/v1/reward": {"POST": self._reward},
            "/reward": {"POST": self._reward},
            "/pooling": {"POST": self._pooling},
            "/v1/pooling": {"POST": self._pooling},
            "/v1/prm": {"POST": self._prm},
            "/health": {"GET": self._health},
            "/metrics": {"GET": self._metrics},
            "/metrics/reset": {"POST": self._metrics_reset},
            "/reset_prefix_cache": {"POST": self._reset_prefix_cache},
        }
        server = profile(self.config)
        for route in server.missing_routes:
            self._routes.pop(route, None)
        for route, info in server.info_routes.items():
            self._routes[route] = {"GET": self._info_handler(info)}

    # ------------------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self._bind_loop()
        path: str = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if len(path) > 1:
            path = path.rstrip("/")
        ex = Exchange(scope, receive, send, path)
        methods = self._routes.get(path)
        label = path if methods is not None else "other"
        try:
            if methods is None:
                raise HTTPError(404, f"no route {path}", code="not_found")
            handler = methods.get(ex.method)
            if handler is None:
                raise HTTPError(405, f"method {ex.method} not allowed on {path}")
            await handler(ex)
        except HTTPError as exc:
            if ex.status == 0:
                await ex.error(exc)
        except ClientGone:
            pass
        except ConnectionResetError:
            raise
        except Exception:
            log.exception("ttc_sim: error in %s", path)
            if ex.status == 0:
                await ex.error(HTTPError(500, "internal error in the simulator"))
        finally:
            self.metrics.requests[(label, ex.status)] += 1

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._bind_loop()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _bind_loop(self) -> None:
        if self._slots is None:
            self._loop = asyncio.get_running_loop()
            self._slots = asyncio.Semaphore(self.config.slots)
            self._stopping = asyncio.Event()

    def reset_metrics(self, timeout: float = 5.0) -> None:
        """Zero the metrics from another thread (runs on the server's loop when it has one)."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            self.metrics.reset()
            return
        done = threading.Event()

        def reset() -> None:
            self.metrics.reset()
            done.set()

        loop.call_soon_threadsafe(reset)
        if not done.wait(timeout):
            raise TimeoutError("the simulator's event loop did not reset its metrics")

    def begin_shutdown(self) -> None:
        """End hangs now (callable from any thread)."""
        loop, event = self._loop, self._stopping
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    # ------------------------------------------------------------------------ helpers
    def _resolve(self, model: Any) -> SimConfig:
        if not isinstance(model, str):
            raise HTTPError(400, "model must be a string", param="model")
        cfg = self._models.get(model)
        if cfg is None:
            try:
                cfg = config_for_model(self.config, model)[1]
            except ModelNameError as exc:
                raise HTTPError(400, str(exc), param="model", code="invalid_model") from None
            if len(self._models) > 4096:
                self._models.clear()
            self._models[model] = cfg
        return cfg

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{self._id_prefix}{next(self._ids):x}"

    def _draw_fault(self, cfg: SimConfig) -> str | None:
        u = self._fault_rng.random()
        if cfg.fault_rate_total <= 0:
            return None
        rates = (
            cfg.fail_500_rate,
            cfg.fail_429_rate,
            cfg.hang_rate,
            cfg.malformed_rate,
            cfg.reset_rate,
        )
        for kind, rate in zip(FAULT_KINDS, rates, strict=True):
            if u < rate:
                return kind
            u -= rate
        return None

    async def _fault(self, ex: Exchange, cfg: SimConfig, stream: bool = False) -> bool:
        """Inject this request's fault, if one is drawn; True when it answered the request."""
        kind = self._draw_fault(cfg)
        if kind is None:
            return False
        self.metrics.faults[kind] += 1
        if kind == "hang":
            await self._sleep_or_stop(cfg.hang_s)
            return False
        if kind == "500":
            await ex.error(HTTPError(500, "simulated internal server error", code="internal_error"))
        elif kind == "429":
            after = cfg.retry_after_s
            value = str(int(after)) if after == int(after) else f"{after:g}"
            exc = HTTPError(
                429,
                "simulated rate limit: retry later",
                code="rate_limit_exceeded",
                headers=[(b"retry-after", value.encode())],
            )
            await ex.error(exc)
        elif kind == "malformed":
            if stream:
                await ex.start_stream()
                await ex.end_stream(b'data: {"id":"cmpl-sim","choices":[{"te\n\n')
            else:
                await ex.respond(200, _MALFORMED)
        else:
            await ex.reset()
        return True

    async def _sleep_or_stop(self, seconds: float) -> None:
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Wait for a slot (FIFO) and hold it, keeping the gauges."""
        assert self._slots is not None
        m = self.metrics
        m.queued_sequences += 1
        queued = True
        try:
            async with self._slots:
                m.queued_sequences -= 1
                queued = False
                m.sequence_started()
                try:
                    yield
                finally:
                    m.sequence_finished()
        finally:
            if queued:
                m.queued_sequences -= 1

    async def _occupy(self, seconds: float) -> None:
        """Hold one slot for ``seconds``."""
        async with self._slot():
            await asyncio.sleep(seconds)

    # ----------------------------------------------------------------------- generation
    async def _completions(self, ex: Exchange) -> None:
        await self._generate(ex, "completions")

    async def _chat(self, ex: Exchange) -> None:
        await self._generate(ex, "chat")

    async def _generate(self, ex: Exchange, kind: Kind) -> None:
        body = await ex.json_body()
        self.metrics.request_started()
        try:
            cfg = self._resolve(body.get("model", "sim"))
            req = parse_request(kind, body, cfg.max_n)
            refusal = n_rejection(cfg, req.n)
            if refusal is not None:
                raise refusal
            self._apply_template(req, body, cfg)
            _check_context(req, cfg)
            if await self._fault(ex, cfg, req.stream):
                return
            choices, prompt_tokens = self._sample(req, cfg)
            completion_tokens = sum(len(c.tokens) for c in choices)
            use = usage(prompt_tokens, completion_tokens)
            texts = [p.text if p.rendered is None else p.rendered for p in req.prompts]
            cached = await self.kv.prefill(texts, [p.prompt_tokens for p in req.prompts], cfg)
            sent = self._usage_sent(choices, use, cfg, cached)
            rid = self._new_id("chatcmpl" if kind == "chat" else "cmpl")
            created = int(time.time())
            per_token = self.kv.per_token_s(cfg, self.metrics.in_flight_sequences)
            if req.stream:
                await self._stream(ex, req, cfg, choices, rid, created, use, sent, per_token)
                self._generated(req, texts, choices)
                return
            durations = [cfg.base_latency_s + per_token * len(c.tokens) for c in choices]
            if len(durations) == 1:
                await self._occupy(durations[0])
            else:
                await asyncio.gather(*(self._occupy(d) for d in durations))
            self._count(choices, use, cached)
            self._generated(req, texts, choices)
            payload = response_body(req, rid, created, choices, use)
            if sent is None:
                del payload["usage"]
            else:
                payload["usage"] = sent
            await ex.respond(200, to_wire(dumps(payload)))
        finally:
            self.metrics.request_finished()

    def _apply_template(self, req: GenRequest, body: dict[str, Any], cfg: SimConfig) -> None:
        """Render a chat request with the configured template (what the model continues
        is what the template left); find a rendered assistant turn in a raw prompt."""
        if req.kind == "completions":
            for prompt in req.prompts:
                turn = assistant_turn(prompt.text)
                if turn is not None:
                    prompt.final_assistant = turn
            return
        if cfg.chat_template == "none":
            return
        messages = [
            (str(m.get("role")), m["content"] if isinstance(m.get("content"), str) else "")
            for m in body.get("messages") or []
            if isinstance(m, dict)
        ]
        kwargs = body.get("chat_template_kwargs") or {}
        thinking = kwargs.get("enable_thinking") is not False
        add_generation_prompt = body.get("add_generation_prompt")
        try:
            rendered = render(
                cfg.chat_template,
                messages,
                add_generation_prompt=True
                if add_generation_prompt is None
                else bool(add_generation_prompt),
                continue_final_message=bool(body.get("continue_final_message")),
                enable_thinking=thinking,
            )
        except TemplateError as exc:
            raise HTTPError(400, str(exc), error_type="BadRequestError", code=400) from None
        prompt = req.prompts[0]
        turn = rendered.assistant
        if cfg.chat_template == "qwen3":
            req.enable_thinking = thinking and not turn
            if turn.startswith(EMPTY_THINK) and "<think>" in turn[len(EMPTY_THINK) :]:
                # Qwen3 reads the empty think block as "thinking off": it answers at once.
                turn = ""
        prompt.final_assistant = turn
        prompt.prompt_tokens = count_tokens(rendered.prompt)
        prompt.rendered = rendered.prompt

    def _usage_sent(
        self, choices: list[ChoiceOut], use: dict[str, int], cfg: SimConfig, cached: int
    ) -> dict[str, Any] | None:
        """The usage the response says (the metrics keep the real one)."""
        sent: dict[str, int] = use
        if profile(cfg).usage_one_choice and len(choices) > 1:
            one = len(choices[0].tokens)
            sent = usage(use["prompt_tokens"], one)
        out = usage_as_sent(sent, cfg.usage_style)
        if cfg.prompt_tokens_details and cfg.usage_style == "exact":
            out = with_cached(out, cached)
        return out

    def _count(self, choices: list[ChoiceOut], use: dict[str, int], cached: int = 0) -> None:
        m = self.metrics
        m.choices_total += len(choices)
        m.generation_requests_ok += 1
        for c in choices:
            if c.kind != "sample":
                m.judge_choices[c.kind] += 1
        m.prompt_tokens_total += use["prompt_tokens"]
        m.completion_tokens_total += use["completion_tokens"]
        m.prefix_cache_queries_total += use["prompt_tokens"]
        m.prefix_cache_hits_total += cached

    def _generated(self, req: GenRequest, texts: list[str], choices: list[ChoiceOut]) -> None:
        """Cache the generated blocks (each prompt followed by each of its choices)."""
        for pi, text in enumerate(texts):
            own = choices[pi * req.n : (pi + 1) * req.n]
            # The stop string was generated (and cached) even where the text leaves it out.
            tails = [
                "" if req.include_stop or c.stop_reason is None else c.stop_reason for c in own
            ]
            self.kv.generated(text, [c.text + tail for c, tail in zip(own, tails, strict=True)])

    def _seeds(self, req: GenRequest, cfg: SimConfig) -> list[int]:
        if req.temperature == 0:
            return [0] * req.n
        if req.seed is not None:
            if profile(cfg).shares_seed:  # SGLang: one seed for all n samples
                return [req.seed] * req.n
            return [req.seed + i for i in range(req.n)]
        return [self._seed_rng.getrandbits(48) for _ in range(req.n)]

    def _sample(self, req: GenRequest, cfg: SimConfig) -> tuple[list[ChoiceOut], int]:
        choices: list[ChoiceOut] = []
        prompt_tokens = 0
        for pi, prompt in enumerate(req.prompts):
            prompt_tokens += prompt.prompt_tokens
            judge = parse_judge_prompt(prompt.text, self.index)
            kind: str
            if judge is not None:
                problem, prefix, kind = judge.problem, "", judge.kind
            else:
                problem, end = self.index.locate(prompt.text)
                kind = "sample"
                if prompt.final_assistant is not None:
                    prefix = prompt.final_assistant
                elif req.kind == "completions":
                    prefix = prompt.text[end:]
                else:
                    prefix = ""
            for i, seed in enumerate(self._seeds(req, cfg)):
                if judge is None:
                    sample = generate(problem, seed, cfg, prefix, think=req.enable_thinking)
                else:
                    sample = answer_judge(judge, seed, cfg)
                text, finish, stop_reason = _apply_stop(sample.text, req.stop, req.include_stop)
                tokens = split_tokens(text)
                if cfg.garbage_rate > 0 and _garbage_draw(problem.id, seed, prefix, pi, i, cfg):
                    tokens = garbage_tokens(req.max_tokens or 64, (problem.id, seed, prefix))
                    finish, stop_reason = "length", None
                if req.max_tokens is not None and len(tokens) > req.max_tokens:
                    tokens = tokens[: req.max_tokens]
                    finish, stop_reason = "length", None
                tokens = corrupt_tokens(tokens, cfg, (problem.id, seed, pi, i))
                text = "".join(tokens)
                if (
                    prompt.final_assistant is not None
                    and req.kind == "chat"
                    and profile(cfg).echoes_prefill
                ):
                    text = prompt.final_assistant + text  # llama.cpp returns the prefill too
                lps = None
                if req.logprobs is not None:
                    lps = token_logprobs(sample, tokens, stable_seed("lp", problem.id, seed))
                choices.append(
                    ChoiceOut(pi * req.n + i, text, tokens, finish, stop_reason, lps, kind)
                )
        return choices, prompt_tokens

    async def _stream(
        self,
        ex: Exchange,
        req: GenRequest,
        cfg: SimConfig,
        choices: list[ChoiceOut],
        rid: str,
        created: int,
        use: dict[str, int],
        sent: dict[str, Any] | None,
        per_token: float,
    ) -> None:
        queue: asyncio.Queue[tuple[int, int, int]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        base = cfg.base_latency_s
        cached = (sent or {}).get("prompt_tokens_details", {}).get("cached_tokens", 0)

        async def produce(pos: int, c: ChoiceOut) -> None:
            total, sent = len(c.tokens), 0
            try:
                async with self._slot():
                    start = loop.time() + base
                    await asyncio.sleep(base)
                    while sent < total:
                        elapsed = loop.time() - start
                        due = total if per_token <= 0 else min(total, int(elapsed / per_token) + 1)
                        if due > sent:
                            queue.put_nowait((pos, sent, due))
                            sent = due
                        if sent < total:
                            await asyncio.sleep(max(0.002, start + per_token * sent - loop.time()))
                    await asyncio.sleep(max(0.0, start + per_token * total - loop.time()))
            finally:
                if sent < total:  # failed or cancelled: flush what is left so the stream ends
                    queue.put_nowait((pos, sent, total))
                queue.put_nowait((pos, -1, -1))

        def event(payload: dict[str, Any]) -> bytes:
            return b"data: " + to_wire(dumps(payload)) + b"\n\n"

        tasks = [asyncio.create_task(produce(pos, c)) for pos, c in enumerate(choices)]
        try:
            await ex.start_stream()
            if req.kind == "chat":
                first = [
                    {
                        "index": c.index,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                    for c in choices
                ]
                await ex.stream(event(chunk(req, rid, created, first)))
            offsets = [0] * len(choices)
            remaining = len(choices)
            while remaining:
                items = [await queue.get()]
                while not queue.empty():
                    items.append(queue.get_nowait())
                out: list[bytes] = []
                for pos, lo, hi in items:
                    c = choices[pos]
                    if lo < 0:
                        remaining -= 1
                        payload = chunk(req, rid, created, [final_chunk_choice(req, c)])
                        out.append(event(payload))
                        continue
                    for k in range(lo, hi):
                        part = chunk_choice(req, c, k, k + 1, offsets[pos])
                        offsets[pos] += len(c.tokens[k])
                        out.append(event(chunk(req, rid, created, [part])))
                await ex.stream(b"".join(out))
            self._count(choices, use, cached if isinstance(cached, int) else 0)
            tail = b""
            if req.include_usage and sent is not None:
                payload = chunk(req, rid, created, [])
                payload["usage"] = sent
                tail = event(payload)
            await ex.end_stream(tail + b"data: [DONE]\n\n")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --------------------------------------------------------------------------- reward
    async def _classify(self, ex: Exchange) -> None:
        body = await ex.json_body()
        self.metrics.request_started()
        try:
            model = body.get("model", "sim-rm")
            cfg = self._resolve(model)
            raw = body.get("input")
            texts = [raw] if isinstance(raw, str) else raw
            if (
                not isinstance(texts, list)
                or not texts
                or not all(isinstance(t, str) for t in texts)
            ):
                raise HTTPError(400, "input must be a string or a list of strings", param="input")
            if await self._fault(ex, cfg):
                return
            if cfg.reward_latency_s > 0:
                await asyncio.sleep(cfg.reward_latency_s)
            scores = [score_text(t, cfg, self.index) for t in texts]
            tokens = sum(count_tokens(t) for t in texts)
            self.metrics.reward_requests += 1
            self.metrics.reward_items += len(texts)
            data = [
                {
                    "index": i,
                    "label": "good" if p >= 0.5 else "bad",
                    "probs": [1.0 - p, p],
                    "num_classes": 2,
                }
                for i, p in enumerate(scores)
            ]
            await ex.json(
                200,
                {
                    "id": self._new_id("classify"),
                    "object": "list",
                    "created": int(time.time()),
                    "model": model,
                    "data": data,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )
        finally:
            self.metrics.request_finished()

    async def _reward(self, ex: Exchange) -> None:
        body = await ex.json_body()
        self.metrics.request_started()
        try:
            cfg = self._resolve(body.get("model", "sim-rm"))
            prompt, responses = body.get("prompt"), body.get("responses")
            if not isinstance(prompt, str):
                raise HTTPError(400, "prompt must be a string", param="prompt")
            if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
                raise HTTPError(400, "responses must be a list of strings", param="responses")
            if await self._fault(ex, cfg):
                return
            if cfg.reward_latency_s > 0:
                await asyncio.sleep(cfg.reward_latency_s)
            scores = score_responses(prompt, responses, cfg, self.index)
            self.metrics.reward_requests += 1
            self.metrics.reward_items += len(responses)
            await ex.json(200, {"scores": scores})
        finally:
            self.metrics.request_finished()

    # ---------------------------------------------------------------------- process reward
    def _pooling_items(self, body: dict[str, Any]) -> tuple[list[tuple[Problem, list[str]]], int]:
        """(problem, steps) per input of a pooling request, and its prompt tokens."""
        if body.get("messages") is not None:
            messages = body["messages"]
            if not isinstance(messages, list) or not messages:
                raise HTTPError(400, "messages must be a non-empty list", param="messages")
            texts: list[str] = []
            response = ""
            for i, m in enumerate(messages):
                content = m.get("content") if isinstance(m, dict) else None
                if not isinstance(content, str) or not isinstance(m.get("role"), str):
                    raise HTTPError(
                        400,
                        "each message needs a role and a string content",
                        param=f"messages[{i}]",
                    )
                if m["role"] == "assistant":
                    response = content
                else:
                    texts.append(content)
            problem = self.index.find("\n\n".join(texts))
            tokens = sum(count_tokens(t) for t in texts) + count_tokens(response)
            return [(problem, tagged_steps(response))], tokens
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(t, str) for t in inputs)
        ):
            raise HTTPError(400, "input must be a string or a list of strings", param="input")
        tokens = sum(count_tokens(t) for t in inputs)
        return [parse_pooling_text(t, self.index) for t in inputs], tokens

    async def _pooling(self, ex: Exchange) -> None:
        body = await ex.json_body()
        self.metrics.request_started()
        try:
            model = body.get("model", "sim-prm")
            cfg = self._resolve(model)
            items, tokens = self._pooling_items(body)
            if await self._fault(ex, cfg):
                return
            if cfg.reward_latency_s > 0:
                await asyncio.sleep(cfg.reward_latency_s)
            data = []
            steps = 0
            for i, (problem, path) in enumerate(items):
                scores = step_scores(problem, path, cfg)
                steps += len(scores)
                pairs = [[1.0 - p, p] for p in scores]
                data.append({"index": i, "object": "pooling", "data": pairs})
            self._count_prm(len(items), steps)
            await ex.json(
                200,
                {
                    "id": self._new_id("pool"),
                    "object": "list",
                    "created": int(time.time()),
                    "model": model,
                    "data": data,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )
        finally:
            self.metrics.request_finished()

    @staticmethod
    def _prm_item(item: Any, where: str) -> tuple[str, list[str]]:
        if not isinstance(item, dict):
            raise HTTPError(400, "each item must be an object", param=where)
        prompt, steps = item.get("prompt"), item.get("steps")
        if not isinstance(prompt, str):
            raise HTTPError(400, "prompt must be a string", param=f"{where}.prompt")
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            raise HTTPError(400, "steps must be a list of strings", param=f"{where}.steps")
        return prompt, steps

    async def _prm(self, ex: Exchange) -> None:
        body = await ex.json_body()
        self.metrics.request_started()
        try:
            cfg = self._resolve(body.get("model", "sim-prm"))
            batch = body.get("items")
            if batch is not None:
                if not isinstance(batch, list) or not batch:
                    raise HTTPError(400, "items must be a non-empty list", param="items")
                items = [self._prm_item(it, f"items[{i}]") for i, it in enumerate(batch)]
            else:
                items = [self._prm_item(body, "body")]
            if await self._fault(ex, cfg):
                return
            if cfg.reward_latency_s > 0:
                await asyncio.sleep(cfg.reward_latency_s)
            results = [step_scores(self.index.find(p), steps, cfg) for p, steps in items]
            self._count_prm(len(results), sum(len(r) for r in results))
            if batch is None:
                await ex.json(200, {"step_scores": results[0]})
            else:
                await ex.json(200, {"results": [{"step_scores": r} for r in results]})
        finally:
            self.metrics.request_finished()

    def _count_prm(self, items: int, steps: int) -> None:
        m = self.metrics
        m.prm_requests += 1
        m.prm_items += items
        m.prm_steps += steps

    # ---------------------------------------------------------------------------- misc
    async def _list_models(self, ex: Exchange) -> None:
        created = int(time.time())
        owner = profile(self.config).owned_by
        data: list[dict[str, Any]] = [
            {"id": name, "object": "model", "created": created, "owned_by": owner}
            for name in MODEL_NAMES
        ]
        if self.config.max_model_len is not None:
            for entry in data:
                entry["max_model_len"] = self.config.max_model_len
        await ex.json(200, {"object": "list", "data": data})

    def _info_handler(self, info: Callable[[SimConfig, str], dict[str, Any]]) -> Handler:
        async def handle(ex: Exchange) -> None:
            await ex.json(200, info(self.config, "sim"))

        return handle

    async def _health(self, ex: Exchange) -> None:
        await ex.json(200, {"status": "ok"})

    async def _metrics(self, ex: Exchange) -> None:
        if ex.query.get("format", [""])[0] == "prometheus":
            body = self.metrics.prometheus().encode()
            await ex.respond(200, body, b"text/plain; version=0.0.4")
        else:
            await ex.json(200, self.metrics.snapshot())

    async def _metrics_reset(self, ex: Exchange) -> None:
        self.metrics.reset()
        await ex.json(200, {"status": "reset"})

    async def _reset_prefix_cache(self, ex: Exchange) -> None:
        self.kv.cache.clear()
        await ex.respond(200, b"")


def _garbage_draw(pid: str, seed: int, prefix: str, pi: int, i: int, cfg: SimConfig) -> bool:
    """Whether this choice is garbage (``garbage_rate``; deterministic per choice)."""
    return cfg.garbage_rate >= 1 or rng_for("garbage?", pid, seed, prefix, pi, i).random() < (
        cfg.garbage_rate
    )


def _check_context(req: GenRequest, cfg: SimConfig) -> None:
    """vLLM's 400 for a prompt (or a prompt and its max_tokens) over the context length."""
    limit = cfg.max_model_len
    if limit is None:
        return
    for prompt in req.prompts:
        if prompt.prompt_tokens > limit:
            raise HTTPError(
                400,
                f"This model's maximum context length is {limit} tokens. However, your "
                f"prompt contains {prompt.prompt_tokens} input tokens, which exceeds this "
                "limit even without any output tokens. Please reduce the length of the "
                "input prompt.",
                param="input_tokens",
                error_type="BadRequestError",
                code=400,
            )
        wanted = prompt.prompt_tokens + (req.max_tokens or 0)
        if wanted > limit:
            raise HTTPError(
                400,
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {wanted} tokens ({prompt.prompt_tokens} in the messages, "
                f"{req.max_tokens} in the completion). Please reduce the length of the "
                "messages or completion.",
                error_type="BadRequestError",
                code=400,
            )


def _apply_stop(text: str, stop: list[str], include: bool) -> tuple[str, str, str | None]:
    """Cut ``text`` at the first stop string: (text, finish_reason, stop_reason)."""
    best, which = -1, None
    for s in stop:
        i = text.find(s)
        if i >= 0 and (best < 0 or i < best):
            best, which = i, s
    if which is None:
        return text, "stop", None
    end = best + len(which) if include else best
    return text[:end], "stop", which


def create_app(config: SimConfig | None = None, *, index: ProblemIndex | None = None) -> SimApp:
    """The simulated server as an ASGI application (for uvicorn, httpx's ASGITransport, or
    mounting under another app)."""
    return SimApp(config, index=index)
