"""Who is looking at a page: the login session in the ``ttc_session`` cookie.

The login form checks an API key like any key and starts a server-side session
(``ttc_core.service.ui_sessions``); the cookie holds only the session's random token. Pages
redirect to the login form when auth is on and the session is missing, ended or its key
revoked; the data the pages fetch goes through the API's own auth (which reads the same
cookie), so a page shell never widens what a key may see.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from ttc_api.csrf import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from ttc_api.deps import SessionDep, SettingsDep
from ttc_core.service.auth import Principal, verify_key
from ttc_core.service.ui_sessions import verify_session
from ttc_core.settings import Settings


@dataclass(frozen=True)
class Viewer:
    """The signed-in caller as the pages see it."""

    #: Whose jobs the pages show; ``None`` for every tenant (an admin, or auth off).
    tenant: str | None
    #: What the nav bar says about the caller.
    label: str
    #: Whether there is a login to end (auth on).
    signed_in: bool


class LoginRequired(Exception):
    """Raised by page dependencies; answered with a redirect to the login form."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def viewer_of(principal: Principal) -> Viewer:
    if principal.admin:
        return Viewer(tenant=None, label=f"admin ({principal.tenant})", signed_in=True)
    return Viewer(tenant=principal.tenant, label=f"tenant {principal.tenant}", signed_in=True)


def key_principal(session: Session, key: str | None) -> Principal | None:
    """The principal of an API key typed into the login form, or None."""
    return verify_key(session, key) if key else None


def viewer_for_session(session: Session, settings: Settings, token: str | None) -> Viewer | None:
    """The viewer a session cookie stands for, or None when auth is on and it is not a
    live session of a live key."""
    if not settings.auth_enabled:
        return Viewer(tenant=None, label="auth off", signed_in=False)
    principal = verify_session(session, token) if token else None
    return viewer_of(principal) if principal is not None else None


def _page_viewer(request: Request, session: SessionDep, settings: SettingsDep) -> Viewer:
    viewer = viewer_for_session(session, settings, request.cookies.get(SESSION_COOKIE))
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return viewer


PageViewerDep = Annotated[Viewer, Depends(_page_viewer)]


def safe_next(next_url: str | None) -> str:
    """Only redirect back into the UI after login (never to another site)."""
    if next_url and next_url.startswith("/ui/") and not next_url.startswith("//"):
        return next_url
    return "/ui/jobs"


async def redirect_to_login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/ui/login?next={quote(exc.next_url)}", status_code=303)


def _set_cookie(
    response: Response, request: Request, name: str, value: str, max_age_s: float
) -> None:
    """http-only (scripts never read it), SameSite=Strict (no cross-site sends; same-site
    ones are refused by ``ttc_api.csrf``), Secure whenever the page came over https."""
    response.set_cookie(
        name,
        value,
        max_age=int(max_age_s),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def set_login_cookie(response: Response, request: Request, token: str, max_age_s: float) -> None:
    """The session token (never the key), for as long as the session lasts."""
    _set_cookie(response, request, SESSION_COOKIE, token, max_age_s)


def clear_login_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


#: How long a login form stays usable (its CSRF nonce cookie).
LOGIN_FORM_TTL_S = 3600.0


def set_login_nonce(response: Response, request: Request, nonce: str) -> None:
    _set_cookie(response, request, LOGIN_CSRF_COOKIE, nonce, LOGIN_FORM_TTL_S)


_process_secret: list[bytes] = []


def ui_secret(settings: Settings) -> bytes:
    """The key that signs login-form tokens: ``TTC_UI_SECRET``, else a random one made
    once per process."""
    if settings.ui_secret is not None:
        return settings.ui_secret.get_secret_value().encode()
    if not _process_secret:
        _process_secret.append(secrets.token_bytes(32))
    return _process_secret[0]
