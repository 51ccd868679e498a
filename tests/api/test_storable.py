"""The storable check and scrub on their own (no server)."""

from __future__ import annotations

import pytest

from ttc_api.storable import parse_storable, scrub


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"a": {"b": ["ok", "\\ud800"]}}', "a.b.1"),
        ('{"a": Infinity}', "a"),
        ('{"a": [1, -Infinity]}', "a.1"),
        ('{"a": NaN}', "a"),
        ('{"a": 1e999}', "a"),
        ('{"a": -1e999}', "a"),
        ('{"a": 9223372036854775808}', "a"),
        ('{"a": "x\\u0000"}', "a"),
        ('{"a": {"\\udfff": 1}}', "a"),
        ('"\\ud800"', ""),
    ],
)
def test_unstorable_values_are_found_with_their_field(raw: str, field: str) -> None:
    _, found = parse_storable(raw)
    assert found is not None and found.field == field


def test_storable_values_pass() -> None:
    value, found = parse_storable(
        '{"a": "\\ud83d\\ude00 ok", "b": 1.5e300, "c": -9223372036854775808, "d": [true, null]}'
    )
    assert found is None and value["a"] == "\U0001f600 ok"


def test_scrub_replaces_only_what_cannot_be_encoded() -> None:
    clean = {"a": ["x", 1.0], "b": "\U0001f600"}
    assert scrub(clean) is clean
    dirty = {"a": ["x\ud800y"], "b": float("nan"), "\udc00": 1}
    assert scrub(dirty) == {"a": ["x\ufffdy"], "b": None, "\ufffd": 1}
    scrub(dirty)["a"][0].encode("utf-8")
