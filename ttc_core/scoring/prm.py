"""Process reward models served over HTTP: one probability per reasoning step.

Two protocols (the ``prm`` spec's ``protocol``):

``vllm_pooling`` (:class:`VllmPrmScorer`)
    Step-tag PRMs such as Qwen2.5-Math-PRM served by vLLM's pooling endpoint. One request
    per partial solution, ``POST {base_url}/pooling`` with::

        {"model": ..., "messages": [
            {"role": "system", "content": "Please reason step by step, and put your final
                                           answer within \\boxed{}."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": "step 1<extra_0>step 2<extra_0>"}]}

    The answer is ``{"data": [{"index": 0, "data": [[p_bad, p_good], ...]}]}``: one entry
    per step tag; a step's score is the entry's last element (or the entry itself when it
    is a single number). A step tag written inside a step is removed from the step first,
    so the number of tags always equals the number of steps.
``json`` (:class:`JsonPrmScorer`)
    A generic JSON server: ``POST {base_url}/v1/prm`` with
    ``{"model": ..., "items": [{"prompt": question, "steps": [...]}, ...]}`` (up to
    ``batch_size`` items per request) answered by ``{"results": [{"step_scores": [...]}, ...]}``.

``base_url`` conventionally has no ``/v1`` suffix; a trailing ``/v1`` is tolerated and not
doubled. Requests carry ``Authorization: Bearer <key>`` when the endpoint has a key, use the
endpoint's ``timeout_s``, and are retried on 429, 5xx, timeouts, transport errors and bodies
that are not JSON (``endpoint.max_retries`` times, with backoff). A response of the wrong
shape, with a score that is not a number in [0, 1], or with a different number of scores
than steps raises :class:`~ttc_core.scoring.base.ScorerError` saying what was wrong.
Identical items in one batch are scored once.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import httpx

from ttc_core.inference.client import gather_or_cancel
from ttc_core.scoring._http import Sleep, describe, endpoint_root, post_json
from ttc_core.scoring.base import PartialSolution, ScorerError, StepScores
from ttc_core.settings import EndpointConfig

__all__ = [
    "PRM_SYSTEM_PROMPT",
    "STEP_TAG",
    "JsonPrmScorer",
    "VllmPrmScorer",
    "parse_step_score",
]

#: The separator Qwen2.5-Math-PRM scores at (one score per occurrence).
STEP_TAG = "<extra_0>"
#: The system prompt Qwen2.5-Math-PRM was trained with.
PRM_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
#: Requests one ``score`` call keeps in flight at most (also capped by max_concurrency).
MAX_PARALLEL_REQUESTS = 32
#: Tolerance for probabilities a hair outside [0, 1] (float rounding); they are clamped.
_EPS = 1e-6

T = TypeVar("T")


def parse_step_score(entry: Any, where: str) -> float:
    """A step's score from one response entry: a number, or a list whose last element is.

    ``where`` names the entry in the error, e.g. ``"step 2"``.
    """
    value = entry
    if isinstance(entry, list):
        if not entry:
            raise ScorerError(f"{where}: empty score list")
        value = entry[-1]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScorerError(f"{where}: score {describe(entry)} is not a number")
    score = float(value)
    if math.isnan(score):
        raise ScorerError(f"{where}: score is NaN")
    if not -_EPS <= score <= 1 + _EPS:
        raise ScorerError(f"{where}: score {score!r} is outside [0, 1]")
    return min(1.0, max(0.0, score))


def _check_items(items: Sequence[PartialSolution]) -> None:
    for i, item in enumerate(items):
        if not item.steps:
            raise ValueError(f"item {i} has no steps: a process reward model scores steps")


async def _bounded(limit: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``jobs`` with at most ``limit`` in flight; the first failure cancels the rest."""
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    if len(jobs) == 1:
        return [await run(jobs[0])]
    return await gather_or_cancel([run(job) for job in jobs])


class _HttpPrm:
    """Shared construction and de-duplication of the HTTP PRM scorers."""

    kind: str = "prm"
    path = ""

    def __init__(
        self,
        endpoint: EndpointConfig,
        client: httpx.AsyncClient,
        *,
        name: str | None = None,
        max_parallel: int = MAX_PARALLEL_REQUESTS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if endpoint.kind != "reward":
            raise ValueError(
                f"endpoint {name or endpoint.model!r} is a {endpoint.kind!r} endpoint, "
                "not a reward endpoint"
            )
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.endpoint = endpoint
        self.client = client
        self.name = name or endpoint.model
        self.url = endpoint_root(endpoint) + self.path
        self.max_parallel = min(max_parallel, endpoint.max_concurrency)
        self._sleep = sleep
        self.what = f"PRM endpoint {self.name!r} ({self.url})"

    async def _post(self, body: dict[str, Any]) -> Any:
        return await post_json(
            self.client, self.url, body, endpoint=self.endpoint, what=self.what, sleep=self._sleep
        )

    async def score(self, items: Sequence[PartialSolution]) -> list[StepScores]:
        _check_items(items)
        if not items:
            return []
        unique = list(dict.fromkeys(items))
        scores = await self._score_unique(unique)
        by_item = dict(zip(unique, scores, strict=True))
        return [StepScores(step_scores=list(by_item[item])) for item in items]

    async def _score_unique(self, items: list[PartialSolution]) -> list[list[float]]:
        raise NotImplementedError


class VllmPrmScorer(_HttpPrm):
    """Step-tag PRM on vLLM's ``/pooling`` endpoint; see the module docstring."""

    path = "/pooling"

    def body(self, item: PartialSolution) -> dict[str, Any]:
        """The request body for one partial solution."""
        steps = [step.replace(STEP_TAG, "") for step in item.steps]
        return {
            "model": self.endpoint.model,
            "messages": [
                {"role": "system", "content": PRM_SYSTEM_PROMPT},
                {"role": "user", "content": item.question},
                {"role": "assistant", "content": STEP_TAG.join(steps) + STEP_TAG},
            ],
        }

    async def _score_unique(self, items: list[PartialSolution]) -> list[list[float]]:
        async def one(item: PartialSolution) -> list[float]:
            return self._parse(await self._post(self.body(item)), len(item.steps))

        return await _bounded(self.max_parallel, [partial(one, item) for item in items])

    def _parse(self, payload: Any, n_steps: int) -> list[float]:
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or not data:
            raise ScorerError(
                f"{self.what} sent a malformed response: expected "
                f'{{"data": [{{"index": 0, "data": [[p_bad, p_good], ...]}}]}}, '
                f"got {describe(payload)}"
            )
        if len(data) != 1:
            raise ScorerError(f"{self.what} returned {len(data)} outputs for 1 input")
        output = data[0]
        entries = output.get("data") if isinstance(output, dict) else None
        if not isinstance(entries, list):
            raise ScorerError(
                f"{self.what} sent a malformed response: 'data[0].data' is not a list of "
                f"step scores, got {describe(output)}"
            )
        if len(entries) != n_steps:
            raise ScorerError(
                f"{self.what}: PRM returned {len(entries)} scores for {n_steps} steps "
                f"(is the model a step-tag PRM that scores at {STEP_TAG}?)"
            )
        try:
            return [parse_step_score(e, f"step {i + 1}") for i, e in enumerate(entries)]
        except ScorerError as exc:
            raise ScorerError(f"{self.what} sent a bad score: {exc}") from None


class JsonPrmScorer(_HttpPrm):
    """A generic JSON PRM server (``/v1/prm``), batched; see the module docstring."""

    path = "/v1/prm"

    def __init__(
        self,
        endpoint: EndpointConfig,
        client: httpx.AsyncClient,
        *,
        batch_size: int = 32,
        name: str | None = None,
        max_parallel: int = MAX_PARALLEL_REQUESTS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(endpoint, client, name=name, max_parallel=max_parallel, sleep=sleep)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size

    async def _score_unique(self, items: list[PartialSolution]) -> list[list[float]]:
        batches = [
            items[start : start + self.batch_size]
            for start in range(0, len(items), self.batch_size)
        ]

        async def one(batch: list[PartialSolution]) -> list[list[float]]:
            body = {
                "model": self.endpoint.model,
                "items": [{"prompt": it.question, "steps": list(it.steps)} for it in batch],
            }
            return self._parse(await self._post(body), batch)

        results = await _bounded(self.max_parallel, [partial(one, batch) for batch in batches])
        return [scores for batch in results for scores in batch]

    def _parse(self, payload: Any, batch: list[PartialSolution]) -> list[list[float]]:
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            raise ScorerError(
                f"{self.what} sent a malformed response: expected "
                f'{{"results": [{{"step_scores": [...]}}, ...]}}, got {describe(payload)}'
            )
        if len(results) != len(batch):
            raise ScorerError(f"{self.what} returned {len(results)} results for {len(batch)} items")
        out: list[list[float]] = []
        for i, (result, item) in enumerate(zip(results, batch, strict=True)):
            raw = result.get("step_scores") if isinstance(result, dict) else None
            if not isinstance(raw, list):
                raise ScorerError(
                    f"{self.what} sent a malformed response: results[{i}] has no "
                    f"'step_scores' list, got {describe(result)}"
                )
            if len(raw) != len(item.steps):
                raise ScorerError(
                    f"{self.what}: results[{i}]: PRM returned {len(raw)} scores for "
                    f"{len(item.steps)} steps"
                )
            try:
                out.append(
                    [parse_step_score(v, f"results[{i}] step {j + 1}") for j, v in enumerate(raw)]
                )
            except ScorerError as exc:
                raise ScorerError(f"{self.what} sent a bad score: {exc}") from None
        return out
