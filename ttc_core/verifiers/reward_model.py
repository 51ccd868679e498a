"""Outcome reward model served over HTTP.

Three protocols (``EndpointConfig.reward_protocol``):

``vllm_classify``
    vLLM's ``POST {base_url}/classify``. To a vLLM server (``server: vllm``, or found so by
    the probe of ``server: auto``) each candidate goes as ``{"model": ..., "messages":
    [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}]}``: the
    server renders it with the reward model's own chat template, as the model saw it in
    training (a reward model scores a templated exchange, not bare text). Other servers get
    the untemplated batch of ``vllm_classify_text``. The response is ``{"data": [{"index":
    0, "probs": [p_bad, p_good]}]}`` and the score is the last probability (the only one
    for a single-label head).
``vllm_classify_text``
    The same route with untemplated text, batched: ``{"model": ..., "input": [prompt +
    "\\n\\n" + text, ...]}`` (vLLM releases whose ``/classify`` takes no ``messages``).
``json``
    ``POST {base_url}/v1/reward`` with ``{"prompt": ..., "responses": [text, ...]}`` (one
    request per prompt and batch); the response is ``{"scores": [float, ...]}``.

A reward endpoint's ``base_url`` has no ``/v1`` suffix by convention (``http://host:8100``);
a trailing ``/v1`` is tolerated and not doubled.

Transient failures (5xx, 429, connect errors, timeouts) are retried up to
``endpoint.max_retries`` times with exponential backoff and jitter (``Retry-After`` is
honoured, capped at 30 s); then :class:`~ttc_core.verifiers.base.VerifierError` is raised,
as it is at once for other 4xx answers. A malformed response (the wrong shape, scores that
are not numbers, the wrong count) scores the candidates it was for 0, with the reason in
``Verdict.score_error``: one garbage reply must not end a search. Each answer's ``usage``
is counted in the job's usage (:mod:`ttc_core.inference.ledger`).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from ttc_core.inference.failures import describe_transport_error
from ttc_core.inference.redact import upstream_summary
from ttc_core.inference.servers import resolve_profile
from ttc_core.scoring._http import record_usage
from ttc_core.settings import EndpointConfig
from ttc_core.text_safety import decode_json_body
from ttc_core.verifiers.answers import extract_answer, normalize_answer
from ttc_core.verifiers.base import Candidate, Verdict, VerifierError
from ttc_core.verifiers.exact import normalize_reference, shorten
from ttc_core.verifiers.patterns import AnswerPattern

__all__ = ["RewardModelVerifier"]

#: Longest wait honoured from a ``Retry-After`` header, in seconds.
MAX_RETRY_AFTER_S = 30.0
#: Longest backoff between attempts, in seconds (before jitter).
MAX_BACKOFF_S = 10.0
#: How many requests one ``verify`` call keeps in flight at most.
MAX_PARALLEL_REQUESTS = 4

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))
_TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

Sleep = Callable[[float], Awaitable[None]]


class RewardModelVerifier:
    """Scores each candidate with a reward model; ``score`` is the reward.

    With a reference, ``correct`` reports whether the extracted answer equals it
    (normalized strings) and ``feedback`` says why not; the score stays the reward.
    """

    kind: str = "reward_model"
    needs_reference: bool = False

    def __init__(
        self,
        endpoint: EndpointConfig,
        client: httpx.AsyncClient,
        reference: str | None = None,
        pattern: AnswerPattern | None = None,
        batch_size: int = 32,
        *,
        name: str | None = None,
        backoff_base_s: float = 0.5,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if endpoint.kind != "reward":
            raise ValueError(
                f"endpoint {name or endpoint.model!r} is a {endpoint.kind!r} endpoint, "
                "not a reward endpoint"
            )
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.endpoint = endpoint
        self.client = client
        self.reference = reference
        self.reference_norm = normalize_reference(reference)
        self.pattern = pattern
        self.batch_size = batch_size
        self.name = name or endpoint.model
        self._backoff_base_s = backoff_base_s
        self._sleep = sleep
        root = endpoint.base_url.rstrip("/")
        root = root.removesuffix("/v1")
        path = "/v1/reward" if endpoint.reward_protocol == "json" else "/classify"
        self.url = root + path

    # -- public ----------------------------------------------------------------------------

    async def verify(self, candidates: Sequence[Candidate]) -> list[Verdict]:
        if not candidates:
            return []
        scores = await self._scores(candidates)
        return [self._verdict(c, s, e) for c, (s, e) in zip(candidates, scores, strict=True)]

    # -- scoring ---------------------------------------------------------------------------

    async def _templated(self) -> bool:
        """Whether candidates go to ``/classify`` as conversations (vLLM renders them)."""
        if self.endpoint.reward_protocol != "vllm_classify":
            return False
        profile = await resolve_profile(self.endpoint, self.client, self._headers())
        return profile.kind == "vllm" and profile.classify

    async def _scores(self, candidates: Sequence[Candidate]) -> list[tuple[float, str | None]]:
        """One (score, why it is 0 or None) per candidate, in order, in batches."""
        # (positions, request body) per request.
        jobs: list[tuple[list[int], dict[str, Any]]] = []
        if await self._templated():
            for i, c in enumerate(candidates):
                messages = [
                    {"role": "user", "content": c.prompt},
                    {"role": "assistant", "content": c.text},
                ]
                jobs.append(([i], {"model": self.endpoint.model, "messages": messages}))
        elif self.endpoint.reward_protocol != "json":
            for start in range(0, len(candidates), self.batch_size):
                chunk = range(start, min(start + self.batch_size, len(candidates)))
                inputs = [candidates[i].prompt + "\n\n" + candidates[i].text for i in chunk]
                jobs.append((list(chunk), {"model": self.endpoint.model, "input": inputs}))
        else:
            by_prompt: dict[str, list[int]] = {}
            for i, c in enumerate(candidates):
                by_prompt.setdefault(c.prompt, []).append(i)
            for prompt, positions in by_prompt.items():
                for start in range(0, len(positions), self.batch_size):
                    chunk_pos = positions[start : start + self.batch_size]
                    body = {
                        "prompt": prompt,
                        "responses": [candidates[i].text for i in chunk_pos],
                    }
                    jobs.append((chunk_pos, body))

        limit = asyncio.Semaphore(min(MAX_PARALLEL_REQUESTS, self.endpoint.max_concurrency))

        async def run(body: dict[str, Any], expected: int) -> list[tuple[float, str | None]]:
            async with limit:
                payload = await self._post(body)
            try:
                return [(score, None) for score in self._parse_scores(payload, expected)]
            except VerifierError as exc:  # this reply is unusable; the search goes on
                return [(0.0, str(exc))] * expected

        if len(jobs) == 1:
            results = [await run(jobs[0][1], len(jobs[0][0]))]
        else:
            # A TaskGroup cancels the other requests as soon as one batch fails for good.
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(run(body, len(pos))) for pos, body in jobs]
            except BaseExceptionGroup as failed:
                for exc in failed.exceptions:
                    if isinstance(exc, VerifierError):
                        raise exc from None
                raise
            results = [task.result() for task in tasks]
        scores: list[tuple[float, str | None]] = [(math.nan, None)] * len(candidates)
        for (positions, _), batch_scores in zip(jobs, results, strict=True):
            for i, score in zip(positions, batch_scores, strict=True):
                scores[i] = score
        return scores

    def _parse_scores(self, payload: Any, expected: int) -> list[float]:
        try:
            if self.endpoint.reward_protocol != "json":
                data = payload["data"]
                if not isinstance(data, list):
                    raise TypeError("'data' is not a list")
                indexed = [(int(item.get("index", i)), item) for i, item in enumerate(data)]
                indexed.sort(key=lambda pair: pair[0])
                if [i for i, _ in indexed] != list(range(len(indexed))):
                    raise ValueError("'index' values are not 0..n-1")
                raw = [_last_prob(item["probs"]) for _, item in indexed]
            else:
                values = payload["scores"]
                if not isinstance(values, list):
                    raise TypeError("'scores' is not a list")
                raw = [_as_score(v) for v in values]
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise VerifierError(
                f"reward endpoint {self.name!r} ({self.url}) sent a malformed response: {exc}"
            ) from None
        if len(raw) != expected:
            raise VerifierError(
                f"reward endpoint {self.name!r} ({self.url}) returned {len(raw)} scores "
                f"for {expected} inputs"
            )
        return raw

    # -- transport -------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        key = self.endpoint.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: uniform in [d/2, d], d = base * 2**attempt."""
        delay = min(MAX_BACKOFF_S, self._backoff_base_s * (2**attempt))
        return delay * (0.5 + random.random() / 2)

    async def _post(self, body: dict[str, Any]) -> Any:
        attempts = self.endpoint.max_retries + 1
        last_error = ""
        for attempt in range(attempts):
            wait: float | None = None
            try:
                response = await self.client.post(
                    self.url,
                    json=body,
                    headers=self._headers(),
                    timeout=self.endpoint.timeout_s,
                )
            except _TRANSIENT_ERRORS as exc:
                last_error = describe_transport_error(exc, self.url, self.endpoint.timeout_s)
            except httpx.HTTPError as exc:
                raise VerifierError(
                    f"reward endpoint {self.name!r} ({self.url}) request failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            else:
                if response.is_success:
                    try:
                        payload = decode_json_body(response.content)
                        record_usage(self.name, payload)
                        return payload
                    except ValueError:
                        pass
                # Tenants read this text: bounded, the endpoint's key and credentials out.
                upstream = upstream_summary(response.text, [self.endpoint.api_key()], 200)
                if response.is_success:
                    raise VerifierError(
                        f"reward endpoint {self.name!r} ({self.url}) answered "
                        f"{response.status_code} with a body that is not JSON: "
                        f"{upstream!r}"
                    )
                detail = f"HTTP {response.status_code}: {upstream!r}"
                if response.status_code not in _RETRY_STATUS:
                    raise VerifierError(
                        f"reward endpoint {self.name!r} ({self.url}) refused the request: {detail}"
                    )
                last_error = detail
                wait = _retry_after(response)
            if attempt + 1 < attempts:
                await self._sleep(wait if wait is not None else self._backoff(attempt))
        raise VerifierError(
            f"reward endpoint {self.name!r} ({self.url}) failed after {attempts} attempt"
            f"{'s' if attempts != 1 else ''}; last error: {last_error}"
        )

    # -- verdicts --------------------------------------------------------------------------

    def _verdict(self, candidate: Candidate, score: float, error: str | None = None) -> Verdict:
        raw = extract_answer(candidate.text, self.pattern)
        answer = (normalize_answer(raw) if raw is not None else "") or None
        ref = self.reference_norm
        if ref is None:
            return Verdict(score, answer, None, None, error)
        if answer is None:
            return Verdict(score, None, False, "no final answer found", error)
        if answer == ref:
            return Verdict(score, answer, True, None, error)
        return Verdict(
            score, answer, False, f"expected {shorten(ref)}, got {shorten(answer)}", error
        )


def _as_score(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"score {value!r} is not a number")
    score = float(value)
    if not math.isfinite(score):
        raise ValueError(f"score {value!r} is not finite")
    return score


def _last_prob(probs: Any) -> float:
    if isinstance(probs, int | float) and not isinstance(probs, bool):
        return _as_score(probs)
    if not isinstance(probs, list) or not probs:
        raise TypeError(f"'probs' {probs!r} is not a non-empty list")
    return _as_score(probs[-1])


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After: <seconds>`` header, capped; ``None`` if absent/a date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)
