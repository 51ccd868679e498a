from __future__ import annotations

import pytest

from ttc_sim.tokens import count_tokens, split_tokens, truncate_tokens

TEXTS = [
    "",
    "Hello, world!",
    "  leading and trailing  \n\n",
    "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n\nShe makes 9 * 2 = $18.",
    "The final answer is $\\boxed{70,000}$.\nANSWER: 70,000",
    "na\u00efve caf\u00e9 \u2013 \u201cquotes\u201d 3.14 under_score",
    "\n\n",
]


@pytest.mark.parametrize("text", TEXTS)
def test_tokens_rebuild_the_text(text: str) -> None:
    tokens = split_tokens(text)
    assert "".join(tokens) == text
    assert count_tokens(text) == len(tokens)
    assert all(tokens)


def test_token_boundaries() -> None:
    assert split_tokens("a bc, 12.5\n\nX") == ["a", " bc", ",", " 12", ".", "5", "\n\nX"]
    assert split_tokens("end  ") == ["end", "  "]


def test_truncate() -> None:
    assert truncate_tokens("one two three", 2) == ("one two", True)
    assert truncate_tokens("one two", 5) == ("one two", False)
