"""Datasets: JSONL or CSV rows of problems, validated row by row.

A row holds ``prompt`` (or ``messages``, chat messages), ``reference`` (what a right
answer equals; numbers are read as their text), and optionally ``id`` (unique in the
dataset; ``row-<n>`` by default), ``verifier`` (a job verifier for this problem, e.g.
``{"kind": "code", "tests": ...}``) and ``difficulty`` (a number or a label; the plots
break accuracy down by it). CSV takes the same columns; ``messages`` and ``verifier``
cells hold JSON. Every error names its row (1-based: the line of a JSONL file, the data
row of a CSV file, the header not counted), e.g. ``row 3: reference: required``.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.orm import Session

from ttc_core.errors import InputError, LimitError, NotFoundError
from ttc_core.service.submission import ChatMessage
from ttc_core.settings import Settings
from ttc_core.store.models import Dataset
from ttc_core.verifiers import VerifierSpec

#: Errors listed in one refusal (the first ones; fix them and upload again).
MAX_REPORTED_ERRORS = 20
#: Verifiers that judge a sample without a reference.
_SELF_CHECKING = ("code",)


class DatasetRow(BaseModel):
    """One problem of a dataset."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=200)
    prompt: str | None = Field(default=None, min_length=1)
    messages: list[ChatMessage] | None = Field(default=None, min_length=1, max_length=256)
    reference: str | None = Field(default=None, max_length=10_000)
    verifier: VerifierSpec | None = None
    difficulty: float | str | None = None

    @field_validator("reference", "id", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _complete(self) -> DatasetRow:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        if self.reference is None and (
            self.verifier is None or self.verifier.kind not in _SELF_CHECKING
        ):
            raise ValueError("reference: required (or a verifier that needs none: code)")
        texts = [self.prompt or "", self.reference or ""]
        for text in texts + [m.content for m in self.messages or []]:
            if "\x00" in text:
                raise ValueError("text must not contain a NUL character (\\u0000)")
        return self


class DatasetCreate(BaseModel):
    """``POST /v1/datasets``: rows as JSON objects, or a JSONL or CSV file's text."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    rows: list[dict[str, Any]] | None = None
    content: str | None = None
    format: Literal["jsonl", "csv"] = "jsonl"

    @model_validator(mode="after")
    def _one_source(self) -> DatasetCreate:
        if (self.rows is None) == (self.content is None):
            raise ValueError("give exactly one of 'rows' or 'content'")
        return self


def _raw_jsonl(text: str) -> Iterable[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, _Unreadable(f"not JSON ({exc.msg} at column {exc.colno})")


def _raw_csv(text: str) -> Iterable[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    for number, record in enumerate(reader, start=1):
        row: dict[str, Any] = {}
        bad = None
        for key, value in record.items():
            if key is None:
                bad = f"{len(value)} more cells than the header has columns"
                continue
            if value in (None, ""):
                continue
            if key in ("messages", "verifier"):
                try:
                    row[key] = json.loads(value)
                except json.JSONDecodeError:
                    bad = f"{key}: not JSON"
            else:
                row[key] = value
        yield number, _Unreadable(bad) if bad else row


class _Unreadable:
    def __init__(self, why: str) -> None:
        self.why = why


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(x) for x in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def validate_rows(
    raw: Iterable[tuple[int, Any]], *, max_rows: int, source: str = "content"
) -> list[DatasetRow]:
    """Validate numbered rows; raises one InputError listing the first bad rows, whose
    field is ``source`` (a file's text) or ``rows.<index>`` (the first bad JSON row)."""
    rows: list[DatasetRow] = []
    errors: list[str] = []
    first_bad: int | None = None
    seen: dict[str, int] = {}
    for number, item in raw:
        if len(rows) + len(errors) >= max_rows:
            raise LimitError(
                f"more than {max_rows} rows; this server takes at most {max_rows} per dataset",
                field=source,
                status=413,
            )
        problem: str | None = None
        if isinstance(item, _Unreadable):
            problem = item.why
        elif not isinstance(item, dict):
            problem = f"a row is a JSON object, not {type(item).__name__}"
        else:
            try:
                row = DatasetRow.model_validate(item)
            except ValidationError as exc:
                problem = _describe(exc)
            else:
                row_id = row.id or f"row-{number}"
                if row_id in seen:
                    problem = f"id: {row_id!r} is also the id of row {seen[row_id]}"
                else:
                    seen[row_id] = number
                    rows.append(row.model_copy(update={"id": row_id}))
        if problem is not None:
            first_bad = first_bad or number
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(f"row {number}: {problem}")
    if errors:
        field = f"rows.{first_bad - 1}" if source == "rows" and first_bad else source
        raise InputError("; ".join(errors), field=field)
    if not rows:
        raise InputError("the dataset has no rows", field=source)
    return rows


def parse_text(text: str, fmt: str, *, max_rows: int) -> list[DatasetRow]:
    """Rows of a JSONL or CSV file's text."""
    raw = _raw_csv(text) if fmt == "csv" else _raw_jsonl(text)
    return validate_rows(raw, max_rows=max_rows, source="content")


def format_of(path: str) -> str:
    """``csv`` for a ``.csv`` file, else ``jsonl``."""
    return "csv" if path.lower().endswith(".csv") else "jsonl"


def parse_request(body: DatasetCreate, settings: Settings) -> tuple[list[DatasetRow], int]:
    """Validated rows of an upload and its size in bytes (over the limit: 413)."""
    if body.content is not None:
        size = len(body.content.encode())
    else:
        size = len(json.dumps(body.rows, ensure_ascii=False).encode())
    if size > settings.max_dataset_bytes:
        raise LimitError(
            f"the dataset is {size} bytes; this server takes at most "
            f"{settings.max_dataset_bytes} bytes",
            field="content" if body.content is not None else "rows",
            status=413,
        )
    if body.content is not None:
        rows = parse_text(body.content, body.format, max_rows=settings.max_dataset_rows)
    else:
        numbered = enumerate(body.rows or [], start=1)
        rows = validate_rows(numbered, max_rows=settings.max_dataset_rows, source="rows")
    return rows, size


def create_dataset(
    session: Session, *, tenant: str, name: str, rows: Sequence[DatasetRow], size: int
) -> Dataset:
    dataset = Dataset(
        id=str(uuid.uuid4()),
        tenant=tenant,
        name=name,
        rows=[row.model_dump(mode="json", exclude_none=True) for row in rows],
        row_count=len(rows),
        size_bytes=size,
    )
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, dataset_id: str, *, tenant: str | None) -> Dataset:
    """The dataset, if this tenant may see it (another tenant's is a 404)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or (tenant is not None and dataset.tenant != tenant):
        raise NotFoundError(f"no dataset {dataset_id}")
    return dataset
