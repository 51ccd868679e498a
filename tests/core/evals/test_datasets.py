"""Datasets are validated row by row, and every refusal names its rows."""

from __future__ import annotations

import json

import pytest

from ttc_core.errors import InputError, LimitError
from ttc_core.evals.datasets import DatasetCreate, parse_request, parse_text
from ttc_core.settings import Settings


def test_jsonl_rows_with_defaults_and_numbers_as_text() -> None:
    text = "\n".join(
        [
            json.dumps({"prompt": "2+2?", "reference": 4}),
            "",
            json.dumps(
                {"id": "q", "messages": [{"role": "user", "content": "hi"}], "reference": "x"}
            ),
            json.dumps({"prompt": "code", "verifier": {"kind": "code", "tests": "assert True"}}),
        ]
    )
    rows = parse_text(text, "jsonl", max_rows=10)
    assert [r.id for r in rows] == ["row-1", "q", "row-4"]
    assert rows[0].reference == "4"


def test_errors_name_each_bad_row() -> None:
    text = "\n".join(
        [
            json.dumps({"prompt": "ok", "reference": "1"}),
            "{not json",
            json.dumps({"prompt": "no reference"}),
            json.dumps({"prompt": "p", "messages": [], "reference": "1"}),
            json.dumps(["a list"]),
            json.dumps({"prompt": "p", "reference": "1", "colour": "red"}),
        ]
    )
    with pytest.raises(InputError) as err:
        parse_text(text, "jsonl", max_rows=10)
    message = str(err.value)
    for number in (2, 3, 4, 5, 6):
        assert f"row {number}:" in message
    assert "row 1:" not in message
    assert "not JSON" in message and "reference" in message and "colour" in message
    assert err.value.field == "content"


def test_duplicate_ids_are_refused() -> None:
    text = "\n".join(json.dumps({"id": "a", "prompt": "p", "reference": "1"}) for _ in range(2))
    with pytest.raises(InputError, match="row 2: id: 'a' is also the id of row 1"):
        parse_text(text, "jsonl", max_rows=10)


def test_csv_rows() -> None:
    text = 'id,prompt,reference,difficulty\nq1,"What is 1, plus 1?",2,easy\nq2,,3,hard\n'
    with pytest.raises(InputError, match="row 2:"):
        parse_text(text, "csv", max_rows=10)
    rows = parse_text(text.replace("q2,,3", "q2,x,3"), "csv", max_rows=10)
    assert [(r.id, r.prompt, r.reference, r.difficulty) for r in rows] == [
        ("q1", "What is 1, plus 1?", "2", "easy"),
        ("q2", "x", "3", "hard"),
    ]


def test_limits_are_413_naming_the_field() -> None:
    settings = Settings(max_dataset_rows=2, max_dataset_bytes=2048)
    rows = [{"prompt": "p", "reference": str(i)} for i in range(3)]
    with pytest.raises(LimitError) as err:
        parse_request(DatasetCreate(rows=rows), settings)
    assert err.value.status == 413 and err.value.field == "rows"
    with pytest.raises(LimitError) as err:
        parse_request(DatasetCreate(content="x" * 4096), settings)
    assert err.value.status == 413 and err.value.field == "content"


def test_json_rows_name_the_first_bad_index() -> None:
    with pytest.raises(InputError) as err:
        parse_request(
            DatasetCreate(rows=[{"prompt": "p", "reference": "1"}, {"prompt": "p"}]), Settings()
        )
    assert err.value.field == "rows.1" and "row 2:" in str(err.value)
