"""Structured logs: one JSON object per line, or human-readable text.

``TTC_LOG_FORMAT`` chooses: ``json``, ``text``, or ``auto`` (the default: JSON unless
stderr is a terminal). ``TTC_LOG_LEVEL`` sets the root level (default ``INFO``; the CLI's
client commands stay at ``WARNING`` unless ``-v``). Every line carries the ids bound in
:mod:`ttc_core.observability.context` (job, batch, node, tenant, request, task), so that
``jq 'select(.job_id == "...")'`` finds everything one job did across the API and the
workers. Celery's, uvicorn's and the libraries' loggers all end up at the root handler
installed here, so they share the format.

A JSON line::

    {"ts": "2026-12-02T08:01:02.345Z", "level": "INFO", "logger": "ttc_core.engine.batches",
     "message": "batch ... is claimed until ...", "pid": 4242, "job_id": "...",
     "batch_id": "..."}

Stdlib logging with a small formatter, not structlog: every library here (Celery, kombu,
uvicorn, SQLAlchemy, httpx) logs through stdlib loggers, and a formatter on the root
handler is the one place that formats them all; structlog would add a second pipeline
for our own lines only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, Literal

from ttc_core.observability import context

LogFormat = Literal["json", "text"]

#: Record attributes that are not "extra" fields of a call.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}
)

#: Functions that find ids in a record that its code could not bind (Celery's own
#: "Task ... received" lines carry the task id only); registered by the worker.
_enrichers: list[Callable[[logging.LogRecord], dict[str, str]]] = []


def add_enricher(fn: Callable[[logging.LogRecord], dict[str, str]]) -> None:
    if fn not in _enrichers:
        _enrichers.append(fn)


def record_ids(record: logging.LogRecord) -> dict[str, str]:
    """The ids of a record: bound in its context, then found by the enrichers."""
    ids = context.current()
    for enrich in _enrichers:
        try:
            found = enrich(record)
        except Exception:  # a formatter must never raise
            continue
        for key, value in found.items():
            ids.setdefault(key, value)
    return ids


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, pid, bound ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        entry.update(record_ids(record))
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [job=.. batch=..]: message``, for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = record_ids(record)
        short = {k.removesuffix("_id"): v for k, v in ids.items()}
        record.ids = " [" + " ".join(f"{k}={v}" for k, v in short.items()) + "]" if ids else ""
        return super().format(record)


def resolve_format(value: str | None = None) -> LogFormat:
    """``json`` or ``text`` from ``value`` or ``TTC_LOG_FORMAT`` (``auto``: JSON unless
    stderr is a terminal)."""
    chosen = (value or os.environ.get("TTC_LOG_FORMAT") or "auto").strip().lower()
    if chosen == "auto":
        return "text" if sys.stderr.isatty() else "json"
    if chosen not in ("json", "text"):
        raise ValueError(f"TTC_LOG_FORMAT must be json, text or auto, not {chosen!r}")
    return "json" if chosen == "json" else "text"


#: Loggers that libraries configure with handlers of their own; they go to the root.
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "tornado")
#: Libraries that log every request at INFO (hundreds a second from a worker).
_CHATTY = ("httpx", "httpcore", "aiohttp.access")


def configure_logging(level: str | int | None = None, fmt: str | None = None) -> LogFormat:
    """Install one stderr handler on the root logger with the chosen formatter.

    Safe to call again (a Celery worker calls it from its ``setup_logging`` signal after
    the CLI did): the handler is replaced, not added twice.
    """
    chosen = resolve_format(fmt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler._ttc = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("TTC_LOG_LEVEL", "INFO").upper())
    for name in _LIBRARY_LOGGERS:
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)  # warnings become log lines in the same format
    return chosen
