"""Who is looking at a page: the API key in the ``ttc_key`` cookie, checked like any key.

Pages redirect to the login form when auth is on and the cookie is missing or no longer
valid; the data the pages fetch goes through the API's own auth (which reads the same
cookie), so a page shell never widens what a key may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from ttc_api.deps import KEY_COOKIE, SessionDep, SettingsDep
from ttc_core.auth import verify_key
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


def viewer_for_key(session: Session, settings: Settings, key: str | None) -> Viewer | None:
    """The viewer an API key stands for, or None when auth is on and the key is not valid."""
    if not settings.auth_enabled:
        return Viewer(tenant=None, label="auth off", signed_in=False)
    if not key:
        return None
    principal = verify_key(session, key)
    if principal is None:
        return None
    if principal.admin:
        return Viewer(tenant=None, label=f"admin ({principal.tenant})", signed_in=True)
    return Viewer(tenant=principal.tenant, label=f"tenant {principal.tenant}", signed_in=True)


def _page_viewer(request: Request, session: SessionDep, settings: SettingsDep) -> Viewer:
    viewer = viewer_for_key(session, settings, request.cookies.get(KEY_COOKIE))
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


def set_login_cookie(response: Response, request: Request, key: str) -> None:
    """http-only (scripts never read the key), SameSite=Strict (no cross-site sends, which
    also covers CSRF on the actions), Secure whenever the page came over https."""
    response.set_cookie(
        KEY_COOKIE,
        key,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_login_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        KEY_COOKIE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
