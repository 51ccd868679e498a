"""Cross-site request forgery: a browser's login cookie acts only for pages of this origin.

The session cookie is ``SameSite=Strict``, but "site" is looser than "origin": a page on
another port of the same host (``http://host:8080`` against ``http://host:8000``) is the
same site, so the browser sends the cookie with its form posts and ``no-cors`` fetches.
So every unsafe request (POST, PUT, PATCH, DELETE) that authenticates with the cookie
must come from this very origin (OWASP's "verifying origin with standard headers"):

- ``Sec-Fetch-Site`` (sent by every current browser): ``same-origin`` passes (and
  ``none``, a navigation the user made); ``same-site`` and ``cross-site`` are refused;
- otherwise ``Origin``, else ``Referer``, must name this server's scheme, host and port
  (as the request reached it: behind a TLS proxy, run uvicorn with ``--proxy-headers``);
- a request with neither is refused: browsers send ``Origin`` on every unsafe request.

Requests that carry a key themselves (``Authorization``, ``X-API-Key``) are not
cookie-authenticated and pass untouched: a browser never adds those on its own.

The login form has no session yet, so it carries a token instead (signed double-submit,
:func:`login_token`): a random nonce in a cookie and its HMAC in the form. A page on
another port can set a cookie for this host, but it cannot sign one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from ttc_api.problems import problem_response

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
#: The admin UI's session cookie (a random token; see ``ttc_core.service.ui_sessions``).
SESSION_COOKIE = "ttc_session"
#: The login form's double-submit nonce.
LOGIN_CSRF_COOKIE = "ttc_login_csrf"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _origin_tuple(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not scheme or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def own_origin(conn: HTTPConnection) -> tuple[str, str, int] | None:
    """This server's origin as the request reached it (scheme, Host header)."""
    host = conn.headers.get("host")
    if not host:
        return None
    return _origin_tuple(f"{conn.url.scheme}://{host}")


def cross_origin_reason(conn: HTTPConnection) -> str | None:
    """Why this request is not from a page of this origin, or None if it is."""
    fetch_site = conn.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site.lower() in ("same-origin", "none"):
            return None
        return f"a {fetch_site} request (Sec-Fetch-Site) may not act with the login cookie"
    claimed = conn.headers.get("origin") or conn.headers.get("referer")
    if not claimed or claimed == "null":
        return "an unsafe request with the login cookie must say its Origin"
    mine = own_origin(conn)
    theirs = _origin_tuple(claimed)
    if mine is None or theirs is None or mine != theirs:
        return "a request from another origin may not act with the login cookie"
    return None


def cookie_authenticated(conn: HTTPConnection) -> bool:
    """Whether the request would authenticate with the session cookie (no key of its
    own: a key in a header wins over the cookie)."""
    if "authorization" in conn.headers or "x-api-key" in conn.headers:
        return False
    return SESSION_COOKIE in conn.cookies


class SameOriginCookieActions:
    """Answer 403 problem+json to a cookie-authenticated unsafe request from another
    origin, before any route runs (so no route can forget the check)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            conn = HTTPConnection(scope)
            if cookie_authenticated(conn):
                reason = cross_origin_reason(conn)
                if reason is not None:
                    response = problem_response(403, "Forbidden", f"CSRF: {reason}")
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def login_token(secret: bytes, nonce: str) -> str:
    """The form's half of the login double-submit: the nonce's HMAC."""
    return hmac.new(secret, b"ttc-login-csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def login_token_ok(secret: bytes, nonce: str | None, token: str | None) -> bool:
    if not nonce or not token or len(nonce) > 128:
        return False
    return hmac.compare_digest(login_token(secret, nonce), token)
