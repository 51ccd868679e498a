"""The LLM value judge with a fake inference client."""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Callable

import pytest

from ttc_core.errors import RetryableInferenceError
from ttc_core.inference.client import Choice, Generation, GenerationRequest
from ttc_core.scoring import LlmJudgeScorer, PartialSolution, ScorerError, StepScores
from ttc_core.search.prompts import VALUE_MARKER, value_prompt

Replies = Callable[[GenerationRequest], list[str]]


class FakeClient:
    """Looks like an InferenceClient: answers each request with ``replies(request)``."""

    def __init__(self, replies: Replies, name: str = "judge") -> None:
        self.name = name
        self.replies = replies
        self.requests: list[GenerationRequest] = []
        self.in_flight = 0
        self.peak = 0

    async def generate(self, req: GenerationRequest) -> Generation:
        self.requests.append(req)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        texts = self.replies(req)
        choices = [
            Choice(
                index=i,
                text=t,
                finish_reason="stop",
                prompt_tokens=10,
                completion_tokens=2,
                latency_ms=1.0,
                seed=None,
            )
            for i, t in enumerate(texts)
        ]
        return Generation(choices=choices, requests=1)


def fixed(*texts: str) -> Replies:
    return lambda req: list(texts)


def score(client: FakeClient, items: list[PartialSolution], **kwargs: object) -> list[StepScores]:
    scorer = LlmJudgeScorer(client, **kwargs)  # type: ignore[arg-type]
    return asyncio.run(scorer.score(items))


ITEM = PartialSolution("Use 4 4 6 8 to make 24.", ("8 - 4 = 4 (left: 4 4 6)",))


def test_request_shape() -> None:
    client = FakeClient(fixed("sure", "sure", "sure"))
    score(client, [ITEM])
    (req,) = client.requests
    prompt = value_prompt(ITEM.question, list(ITEM.steps))
    assert VALUE_MARKER in prompt
    assert req.n == 3
    assert req.messages == [{"role": "user", "content": prompt}]
    assert req.prompt == prompt
    assert req.temperature == 0.7
    assert req.max_tokens == 8


def test_custom_parameters() -> None:
    client = FakeClient(lambda req: ["likely"] * req.n)
    score(client, [ITEM], samples=5, temperature=0.2, max_tokens=4, seed=11)
    (req,) = client.requests
    assert (req.n, req.temperature, req.max_tokens) == (5, 0.2, 4)
    # The seed is the job's, offset per judged state (reproducible, independent votes).
    assert req.seed == (11 + zlib.crc32(req.prompt.encode())) % 2**31


@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        (("sure", "sure", "sure"), 1.0),
        (("likely", "likely", "likely"), 0.05),
        (("sure", "likely", "impossible"), (1.0 + 0.05 + 0.00005) / 3),
        (("Sure.", "I think it is likely", "no idea"), (1.0 + 0.05 + 0.0) / 3),
        (("impossible",), 0.00005),
    ],
)
def test_value_is_the_mean(replies: tuple[str, ...], expected: float) -> None:
    (out,) = score(FakeClient(fixed(*replies)), [ITEM], samples=len(replies))
    assert out.path_value == pytest.approx(expected)
    assert out.step_scores == [out.path_value]
    for how in ("last", "min", "prod", "mean"):
        assert out.aggregate(how) == pytest.approx(expected)


def test_all_unparseable_scores_zero_with_the_reason() -> None:
    # Tree-of-Thoughts values an unparseable reply at 0; one bad reply must not end a search.
    (out,) = score(FakeClient(fixed("maybe", "hmm", "42")), [ITEM])
    assert out.path_value == 0.0 and out.step_scores == [0.0]
    assert out.note is not None
    assert re.search(r"no value word .* 3 replies: 'maybe', 'hmm', '42'", out.note)


def test_a_parseable_reply_has_no_note() -> None:
    (out,) = score(FakeClient(fixed("sure", "hmm", "42")), [ITEM])
    assert out.note is None and out.path_value == pytest.approx(1 / 3)


def test_no_steps_is_judged_too() -> None:
    client = FakeClient(fixed("likely"))
    (out,) = score(client, [PartialSolution("q")], samples=1)
    assert out.path_value == pytest.approx(0.05)
    assert "(none)" in client.requests[0].messages[0]["content"]  # type: ignore[index]


def test_batch_order_and_dedup() -> None:
    def by_depth(req: GenerationRequest) -> list[str]:
        content = str(req.prompt)
        return ["impossible" if "dead end" in content else "sure"] * req.n

    client = FakeClient(by_depth)
    a = PartialSolution("q", ("fine",))
    b = PartialSolution("q", ("dead end",))
    out = score(client, [a, b, a, b, a])
    assert [s.path_value for s in out] == pytest.approx([1.0, 0.00005, 1.0, 0.00005, 1.0])
    assert len(client.requests) == 2


def test_in_flight_bounded() -> None:
    client = FakeClient(fixed("sure"))
    items = [PartialSolution("q", (f"s{i}",)) for i in range(40)]
    out = score(client, items, samples=1, max_parallel=5)
    assert len(out) == 40
    assert client.peak == 5


def test_inference_failure_becomes_scorer_error() -> None:
    def down(req: GenerationRequest) -> list[str]:
        raise RetryableInferenceError("HTTP 503: overloaded", status=503)

    with pytest.raises(ScorerError, match="judge endpoint 'judge' failed: HTTP 503: overloaded"):
        score(FakeClient(down), [ITEM])


def test_empty_batch() -> None:
    client = FakeClient(fixed("sure"))
    assert score(client, []) == []
    assert client.requests == []


@pytest.mark.parametrize("kwargs", [{"samples": 0}, {"max_tokens": 0}, {"max_parallel": 0}])
def test_bad_arguments(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        LlmJudgeScorer(FakeClient(fixed("sure")), **kwargs)
