"""Dependencies injected into routes through ``Annotated`` aliases."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ttc_api.csrf import SESSION_COOKIE
from ttc_api.event_hub import EventHub
from ttc_core.engine.steps import FollowUp
from ttc_core.errors import AuthError, ForbiddenError
from ttc_core.service.auth import Principal, verify_key
from ttc_core.service.tenant_limits import SubmissionRate
from ttc_core.service.ui_sessions import verify_session
from ttc_core.settings import Settings
from ttc_core.store.db import Database


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


def _event_hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.event_hub
    return hub


def _submission_rate(request: Request) -> SubmissionRate:
    rate: SubmissionRate = request.app.state.submission_rate
    return rate


DEFAULT_TENANT = "default"

# Declared as security schemes so that OpenAPI documents the three ways to send a key.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer ttc_...`")
_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")
_session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="the admin UI's login session (set by its login form; unsafe methods "
    "only from the UI's own origin)",
)


def _principal(
    settings: Annotated[Settings, Depends(_settings)],
    db: Annotated[Database, Depends(_database)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_key_header)],
    session_token: Annotated[str | None, Depends(_session_cookie)],
) -> Principal:
    """Who is calling: the key from ``Authorization: Bearer`` or ``X-API-Key``, else the
    UI's ``ttc_session`` cookie (whose unsafe requests ``ttc_api.csrf`` has already
    checked for their origin). With auth off, an admin of tenant ``default``."""
    if not settings.auth_enabled:
        return Principal(tenant=DEFAULT_TENANT, admin=True, key_id=None)
    key = (bearer.credentials if bearer else None) or header_key
    if not key and not session_token:
        raise AuthError("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")
    with db.transaction() as session:
        if key:
            principal = verify_key(session, key.strip())
        else:
            assert session_token is not None
            principal = verify_session(session, session_token)
    if principal is None:
        raise AuthError(
            "invalid or revoked API key" if key else "the login session ended: log in again"
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(_principal)]


def _tenant(principal: PrincipalDep) -> str | None:
    """The caller's tenant, or None for an admin key (it sees every tenant)."""
    return None if principal.admin else principal.tenant


def _admin(principal: PrincipalDep) -> Principal:
    if not principal.admin:
        raise ForbiddenError("this route needs an admin key")
    return principal


SettingsDep = Annotated[Settings, Depends(_settings)]
DatabaseDep = Annotated[Database, Depends(_database)]
SessionDep = Annotated[Session, Depends(_session)]
DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
TenantDep = Annotated[str | None, Depends(_tenant)]
AdminDep = Annotated[Principal, Depends(_admin)]
SubmissionRateDep = Annotated[SubmissionRate, Depends(_submission_rate)]
EventHubDep = Annotated[EventHub, Depends(_event_hub)]
#: For ``include_router(..., dependencies=AUTHENTICATED)``: every route of the router
#: needs a valid key, whether or not it reads the tenant.
AUTHENTICATED = [Depends(_principal)]


def warn_if_auth_off(settings: Settings) -> None:
    """Say loudly, in the log and on stderr, that anyone who can reach the API is an admin."""
    if settings.auth_enabled:
        return
    logging.getLogger("ttc_api").warning(
        "AUTH IS OFF: every caller is an admin of tenant %r (TTC_AUTH_ENABLED=false)",
        DEFAULT_TENANT,
    )
    if os.environ.get("TTC_LOG_FORMAT") == "json":
        return  # every line must be JSON: the log line above says it (ttc stack prints it)
    bar = "!" * 78
    print(
        f"{bar}\n!! ttc: API AUTH IS OFF. Anyone who can reach this server sees and controls\n"
        f"!! every job. Fine for a local demo; never expose it. (TTC_AUTH_ENABLED=false)\n{bar}",
        file=sys.stderr,
        flush=True,
    )
