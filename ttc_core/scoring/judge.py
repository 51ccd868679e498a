"""An LLM judge as a step scorer: Tree-of-Thoughts' value function.

For each partial solution, one request with ``n = samples`` on
:func:`ttc_core.search.prompts.value_prompt` (a user message); each reply is read with
:func:`ttc_core.search.prompts.parse_value_word` (``sure`` = 1.0, ``likely`` = 0.05,
``impossible`` = 0.00005) and the path value is the mean over the replies. A reply without a
value word counts as 0.0, as in the Tree-of-Thoughts reference implementation; when no
reply has one, the value is 0.0 and ``StepScores.note`` says so (with the replies).

The judge scores the whole partial solution, not each step: the result is
``StepScores(step_scores=[value], path_value=value)`` and aggregation returns ``value``.
A failed inference request (after the client's own retries) becomes a :class:`ScorerError`.
Identical items in one batch are judged once.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from typing import Protocol

from ttc_core.errors import InferenceError
from ttc_core.inference.client import Generation, GenerationRequest, gather_or_cancel
from ttc_core.scoring.base import PartialSolution, ScorerError, StepScores
from ttc_core.search.prompts import parse_value_word, value_prompt

__all__ = ["GenerateClient", "LlmJudgeScorer"]

#: Judge requests one ``score`` call keeps in flight (the client's limiter also applies).
MAX_PARALLEL_REQUESTS = 16


class GenerateClient(Protocol):
    """What the judge needs of an :class:`~ttc_core.inference.client.InferenceClient`."""

    name: str

    async def generate(self, req: GenerationRequest) -> Generation: ...


class LlmJudgeScorer:
    """ToT-style value judgements from a generate endpoint; see the module docstring."""

    kind: str = "llm_judge"

    def __init__(
        self,
        client: GenerateClient,
        samples: int = 3,
        temperature: float = 0.7,
        max_tokens: int = 8,
        *,
        seed: int | None = None,
        max_parallel: int = MAX_PARALLEL_REQUESTS,
    ) -> None:
        if samples < 1:
            raise ValueError("samples must be at least 1")
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.client = client
        self.samples = samples
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.max_parallel = max_parallel

    def request(self, item: PartialSolution) -> GenerationRequest:
        """The judge request for one partial solution."""
        prompt = value_prompt(item.question, list(item.steps))
        # A job's seed makes its judgements reproducible; each state gets its own votes.
        seed = None if self.seed is None else (self.seed + zlib.crc32(prompt.encode())) % 2**31
        return GenerationRequest(
            n=self.samples,
            messages=[{"role": "user", "content": prompt}],
            prompt=prompt,
            seed=seed,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )

    async def score(self, items: Sequence[PartialSolution]) -> list[StepScores]:
        if not items:
            return []
        unique = list(dict.fromkeys(items))
        semaphore = asyncio.Semaphore(self.max_parallel)

        async def one(item: PartialSolution) -> StepScores:
            async with semaphore:
                try:
                    generation = await self.client.generate(self.request(item))
                except InferenceError as exc:
                    raise ScorerError(f"judge endpoint {self.client.name!r} failed: {exc}") from exc
            return self._value([c.text for c in generation.choices])

        values = await gather_or_cancel([one(item) for item in unique])
        by_item = dict(zip(unique, values, strict=True))
        return [by_item[item] for item in items]

    def _value(self, replies: list[str]) -> StepScores:
        if not replies:
            return StepScores.unscorable(
                f"judge endpoint {self.client.name!r} returned no replies", path=True
            )
        parsed = [parse_value_word(text) for text in replies]
        if all(v is None for v in parsed):
            shown = ", ".join(repr(text[:40]) for text in replies[:3])
            return StepScores.unscorable(
                f"judge endpoint {self.client.name!r} gave no value word (sure, likely, "
                f"impossible) in any of its {len(replies)} replies: {shown}",
                path=True,
            )
        value = sum(v or 0.0 for v in parsed) / len(parsed)
        return StepScores(step_scores=[value], path_value=value)
