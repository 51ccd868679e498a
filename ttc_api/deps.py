"""Dependencies injected into routes through ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Protocol

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from ttc_core.db import Database
from ttc_core.settings import Settings
from ttc_core.steps import FollowUp


class Dispatcher(Protocol):
    """Starts a committed job: the Celery queue or the in-process executor."""

    def submit(self, job_id: str) -> object: ...

    def dispatch(self, followups: Iterable[FollowUp]) -> object: ...

    def close(self) -> None: ...


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _session(db: Annotated[Database, Depends(_database)]) -> Iterator[Session]:
    with db.session() as session:
        yield session


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def _tenant() -> str | None:
    """The caller's tenant (auth arrives with API keys; until then one tenant)."""
    return None


SettingsDep = Annotated[Settings, Depends(_settings)]
DatabaseDep = Annotated[Database, Depends(_database)]
SessionDep = Annotated[Session, Depends(_session)]
DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
TenantDep = Annotated[str | None, Depends(_tenant)]

DEFAULT_TENANT = "default"
