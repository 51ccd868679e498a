"""Pure functions of the inference client and the retry policy."""

from __future__ import annotations

import asyncio
import random

import pytest

from ttc_core.errors import InferenceError, RejectedRequestError, RetryableInferenceError
from ttc_core.inference import retry
from ttc_core.inference.client import (
    choice_text,
    parse_retry_after,
    rejects_n,
    render_messages,
    split_evenly,
)

# ------------------------------------------------------------------------ split_evenly


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (10, [1, 1], [5, 5]),
        (11, [1, 1], [6, 5]),
        (10, [1, 1, 1], [4, 3, 3]),
        (100, [1, 3], [25, 75]),
        (7, [5], [7]),
        (0, [1, 2, 3], [0, 0, 0]),
        (3, [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]),
        (9, [0, 0, 0], [3, 3, 3]),  # no weight at all: an even split
        (5, [0, 1], [0, 5]),
        (5, [], []),
    ],
)
def test_split_evenly_examples(total: int, weights: list[int], expected: list[int]) -> None:
    assert split_evenly(total, weights) == expected


def test_split_evenly_sums_and_stays_within_one_of_the_exact_share() -> None:
    # The remainder goes to the first parts, not the largest fractional shares, so a part
    # can be off its exact share by a whole 1 (even a zero weight can get one).
    rng = random.Random(1234)
    for _ in range(2000):
        k = rng.randint(1, 20)
        weights = [rng.randint(0, 500) for _ in range(k)]
        total = rng.randint(0, 100_000)
        parts = split_evenly(total, weights)
        assert len(parts) == k
        assert sum(parts) == total
        assert all(p >= 0 for p in parts)
        weight_sum = sum(weights) or k
        shares = [total * (w if sum(weights) else 1) / weight_sum for w in weights]
        assert all(abs(p - s) <= 1 for p, s in zip(parts, shares, strict=True))


def test_split_evenly_does_not_mutate_weights() -> None:
    weights = [0, 0]
    split_evenly(4, weights)
    assert weights == [0, 0]


# ------------------------------------------------------------------- parse_retry_after


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("2", 2.0),
        ("0", 0.0),
        ("0.05", 0.05),
        (" 3 ", 3.0),
        ("1e1", 10.0),
        ("-4", 0.0),  # never a negative wait
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),  # HTTP-date form: falls back to backoff
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


# --------------------------------------------------------------------- text helpers


def test_choice_text_for_chat_and_completions() -> None:
    assert choice_text({"message": {"role": "assistant", "content": "hi"}}) == "hi"
    assert choice_text({"message": {"content": None}}) == ""
    assert choice_text({"message": None}) == ""
    assert choice_text({"text": "raw"}) == "raw"
    assert choice_text({}) == ""


def test_render_messages() -> None:
    msgs = [{"role": "system", "content": "be brief"}, {"content": "2+2?"}]
    assert render_messages(msgs) == "system: be brief\nuser: 2+2?\n"
    assert render_messages(None) == ""


# ---------------------------------------------------------------------- retry policy


def test_backoff_delay_honours_and_caps_retry_after() -> None:
    assert retry.backoff_delay(0, 0.05) == 0.05
    assert retry.backoff_delay(5, 0.0) == 0.0
    assert retry.backoff_delay(0, 10_000.0) == retry.MAX_RETRY_AFTER_S


def test_backoff_delay_is_jittered_exponential_and_capped() -> None:
    random.seed(7)
    for attempt in range(12):
        bound = min(retry.MAX_DELAY_S, retry.BASE_DELAY_S * 2**attempt)
        delays = [retry.backoff_delay(attempt) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2


def test_with_retries_retries_only_retryable_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "BASE_DELAY_S", 0.0)
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RetryableInferenceError("busy", status=503)
        return "ok"

    assert asyncio.run(retry.with_retries(flaky, retries=2, what="t")) == "ok"
    assert len(calls) == 3

    calls.clear()
    with pytest.raises(RetryableInferenceError):
        asyncio.run(retry.with_retries(flaky, retries=1, what="t"))
    assert len(calls) == 2

    for exc in (RejectedRequestError("no", status=400), InferenceError("bad"), ValueError("x")):
        count: list[int] = []

        async def fails(exc: Exception = exc, count: list[int] = count) -> None:
            count.append(1)
            raise exc

        with pytest.raises(type(exc)):
            asyncio.run(retry.with_retries(fails, retries=5, what="t"))
        assert len(count) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"error": {"message": "n must be 1", "param": "n"}}', True),
        ('{"error": {"message": "\'n\' is not supported with this model"}}', True),
        ('{"error": {"message": "Only 1 completion supported: n must be 1"}}', True),
        ('{"error": {"message": "temperature must be <= 2", "param": "temperature"}}', False),
        ('{"error": {"message": "model not found"}}', False),
        ("prompt is too long for the context window", False),
        (None, False),
    ],
)
def test_only_an_n_rejection_triggers_the_fallback(body: str | None, expected: bool) -> None:
    assert rejects_n(RejectedRequestError("HTTP 400", status=400, body=body)) is expected


def test_split_evenly_gives_leftovers_to_largest_remainders() -> None:
    assert split_evenly(10, [1, 0, 2]) == [3, 0, 7]
    assert split_evenly(5, [0, 0]) == [3, 2]
