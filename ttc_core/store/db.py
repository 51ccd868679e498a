"""Engine and session factory for the configured database (Postgres or SQLite)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {"future": True}
    if is_sqlite(url):
        # Embedded mode: the API thread and the executor thread share one file.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        # No pre-ping: it costs a round trip per transaction on the hot path. A connection
        # that died with its server fails its statement, SQLAlchemy invalidates the pool,
        # and the task's retry runs on fresh connections.
        kwargs.update(pool_size=5, max_overflow=10, pool_recycle=1800)
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, **kwargs)
    if is_sqlite(url):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine (one connection pool) per URL in this process, kept until
    :func:`dispose_engine`. Not an LRU cache: an evicted engine would keep its pooled
    connections open with nobody left to close them."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _ENGINES[url] = make_engine(url)
        return engine


def dispose_engine(url: str) -> None:
    """Close the pool for ``url`` (e.g. before its database is dropped)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()


class Database:
    """A database handle: an engine plus a session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session
