"""Opaque cursors for keyset pagination.

A cursor comes back from the client, so it is input like any other: :func:`read_cursor`
checks that each value has the kind the query needs (an ``INTEGER``-sized number, a plain
string, a timestamp) and answers a 422 naming ``cursor`` otherwise, never a database error.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any, Literal

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from ttc_api.storable import INT32_MAX, INT32_MIN, parse_storable
from ttc_core.errors import InputError
from ttc_core.store.models import ProblemBatch

CursorKind = Literal["int", "str", "datetime"]


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _malformed(field: str) -> InputError:
    return InputError("malformed cursor", field=field)


def decode_cursor(cursor: str, arity: int, *, field: str = "cursor") -> list[Any]:
    """The cursor's values (a JSON list of ``arity`` storable values)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values, unstorable = parse_storable(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _malformed(field) from None
    if unstorable is not None or not isinstance(values, list) or len(values) != arity:
        raise _malformed(field)
    return values


def _value(value: Any, kind: CursorKind, field: str) -> Any:
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _malformed(field)
        if not INT32_MIN <= value <= INT32_MAX:
            raise _malformed(field)
        return value
    if not isinstance(value, str):
        raise _malformed(field)
    if kind == "str":
        return value
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise _malformed(field) from None


def read_cursor(cursor: str, *kinds: CursorKind, field: str = "cursor") -> list[Any]:
    """Decode a cursor of these kinds, in order: ints in the ``INTEGER`` range, strings
    (storable text), timestamps (ISO 8601, parsed)."""
    values = decode_cursor(cursor, len(kinds), field=field)
    return [_value(v, k, field) for v, k in zip(values, kinds, strict=True)]


def newest_first(
    session: Session, model: Any, query: Select[Any], cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """One page of ``query`` over a model with ``created_at`` and ``id``, newest first
    (keyset-paged on both), and the next page's cursor."""
    if cursor:
        created_at, row_id = read_cursor(cursor, "datetime", "str")
        query = query.where(
            or_(
                model.created_at < created_at,
                and_(model.created_at == created_at, model.id < row_id),
            )
        )
    order = (model.created_at.desc(), model.id.desc())
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more else None
    return rows, next_cursor


def newest_units(
    session: Session, kind: str, tenant: str | None, cursor: str | None, limit: int
) -> tuple[list[ProblemBatch], str | None]:
    """One page of a tenant's units of jobs of ``kind`` (problem batches or evals; every
    tenant's for an admin, ``tenant=None``), newest first, and the next page's cursor."""
    query = select(ProblemBatch).where(ProblemBatch.kind == kind)
    if tenant is not None:
        query = query.where(ProblemBatch.tenant == tenant)
    return newest_first(session, ProblemBatch, query, cursor, limit)
