"""What an attempt paid and what its stored nodes carry (``ttc_core.inference.ledger``)."""

from __future__ import annotations

from ttc_core.inference import ledger


def test_tokens_no_stored_node_carries_are_unstored() -> None:
    with ledger.attempt() as paid:
        ledger.record("gen", prompt_tokens=100, completion_tokens=40)  # two samples
        ledger.record("gen", prompt_tokens=30, completion_tokens=5)  # a judge's vote
        ledger.record_stored([{"prompt_tokens": 50, "completion_tokens": 20}] * 2)
    assert ledger.current() is None
    rest = paid.unstored("gen")["gen"]
    assert (rest.requests, rest.prompt_tokens, rest.completion_tokens) == (2, 30, 5)


def test_a_sample_served_by_the_cache_does_not_hide_what_a_server_was_paid() -> None:
    # Found against a real vLLM (tests/conformance: ToT with an LLM judge): a cached
    # sample's tokens, counted as stored, ate the judge's tokens from the job's usage.
    with ledger.attempt() as paid:
        ledger.record("gen", prompt_tokens=30, completion_tokens=25)  # the judge only
        ledger.record_stored(
            [
                {"prompt_tokens": 50, "completion_tokens": 20, "cached": True},
                {"prompt_tokens": 0, "completion_tokens": 0, "cached": False},
            ]
        )
    rest = paid.unstored("gen")["gen"]
    assert (rest.prompt_tokens, rest.completion_tokens) == (30, 25)
