"""Idempotent bulk inserts on Postgres as one statement over column arrays.

``INSERT ... SELECT * FROM unnest(:c1::t1[], :c2::t2[], ...) ON CONFLICT DO NOTHING``
sends a batch of rows as one array per column: one statement to parse, bind and execute
however many rows, where an executemany (even pipelined) binds and executes each row
on its own. A best-of-4096 job writes 4,096 node rows; the per-row work was a fifth of
the worker's CPU.

Values go through each column type's own bind processing first (``SafeText`` cleaning,
``SafeJSON``, ``UtcDateTime``), so a row stored this way is the row an ORM or Core insert
stores. Rows must share one set of keys; columns a row leaves out get their Python-side
defaults, as a Core insert gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Boolean, Connection, Float, Integer, Table, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

__all__ = ["array_cast", "array_values", "unnest_insert"]

_Statement = tuple[Any, list[tuple[str, Callable[[list[Any]], list[Any]]]]]
_STATEMENTS: dict[tuple[str, tuple[str, ...]], _Statement] = {}


def _coerce(column_type: Any) -> Callable[[Any], Any] | None:
    """One Python type per array: psycopg refuses a list that mixes int and float."""
    if isinstance(column_type, Boolean):
        return bool
    if isinstance(column_type, Float):
        return float
    if isinstance(column_type, Integer):  # BigInteger too
        return int
    return None


def array_values(column: Any, dialect: Dialect) -> Callable[[list[Any]], list[Any]]:
    """What turns a column's Python values into one array parameter: the column type's
    bind processing, one Python type per array."""
    impl = column.type.dialect_impl(dialect)
    process = impl.bind_processor(dialect)
    coerce = _coerce(getattr(impl, "impl", impl)) or _coerce(column.type)

    def convert(values: list[Any]) -> list[Any]:
        if coerce is not None:
            values = [None if v is None else coerce(v) for v in values]
        if process is not None:
            values = [process(v) for v in values]
        return values

    return convert


def array_cast(column: Any, dialect: Dialect) -> str:
    """``CAST(:name AS type[])``: the column's values as one typed array parameter."""
    return f"CAST(:{column.name} AS {column.type.dialect_impl(dialect).compile(dialect=dialect)}[])"


def _statement(table: Table, keys: tuple[str, ...], dialect: Dialect) -> _Statement:
    cache_key = (table.name, keys)
    cached = _STATEMENTS.get(cache_key)
    if cached is not None:
        return cached
    columns = [table.c[key] for key in keys]
    arrays = ", ".join(array_cast(c, dialect) for c in columns)
    names = ", ".join(f'"{c.name}"' for c in columns)
    statement = text(
        f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({arrays}) '
        "ON CONFLICT DO NOTHING"
    )
    built = (statement, [(c.name, array_values(c, dialect)) for c in columns])
    _STATEMENTS[cache_key] = built
    return built


def _with_defaults(table: Table, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    missing = [c for c in table.columns if c.name not in rows[0] and c.default is not None]
    if not missing:
        return list(rows)
    filled = []
    for row in rows:
        extra = {}
        for column in missing:
            default: Any = column.default
            extra[column.name] = default.arg(None) if default.is_callable else default.arg
        filled.append({**row, **extra})
    return filled


def unnest_insert(
    conn: Session | Connection, dialect: Dialect, table: Table, rows: Sequence[dict[str, Any]]
) -> bool:
    """Insert ``rows`` into ``table`` ignoring duplicates, in one statement (a Session
    flushes first, as for any statement); False (and nothing done) when the rows do not
    share one set of keys (the caller inserts them the usual way)."""
    if not rows:
        return True
    first = rows[0].keys()
    if any(row.keys() != first for row in rows):
        return False
    rows = _with_defaults(table, rows)
    keys = tuple(rows[0])
    statement, columns = _statement(table, keys, dialect)
    params = {name: convert([row[name] for row in rows]) for name, convert in columns}
    conn.execute(statement, params)
    return True
