"""The login form on its own (no browser): a server-side session whose token (never the
key) goes in a strict http-only cookie, Secure over https; the form's CSRF token; logout
and key revocation ending the session; the Origin check of cookie-authenticated actions;
the redirects of a refused key, and no open redirect after login."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from ttc_api.app import create_app
from ttc_api.csrf import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from ttc_api.ui.access import safe_next
from ttc_cli.migrate import upgrade
from ttc_core.service.auth import create_key, revoke_key
from ttc_core.settings import Settings
from ttc_core.store.db import Database
from ttc_core.store.models import UiSession


class _NoDispatch:
    def submit(self, job_id: str) -> None: ...

    def dispatch(self, followups: Any) -> None: ...

    def close(self) -> None: ...


class Ui:
    """The app in process, and a browser-like client per origin (one cookie jar)."""

    def __init__(self, app: Any, db: Database, key: str, key_id: str) -> None:
        self.app, self.db, self.key, self.key_id = app, db, key, key_id

    def run(self, base_url: str, steps: Any) -> Any:
        async def go() -> Any:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
                return await steps(client)

        # In a thread of its own: Playwright's sync API may hold this thread's event loop.
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(anyio.run, go).result()


@pytest.fixture
def ui(tmp_path: Path) -> Ui:
    url = f"sqlite:///{tmp_path / 'ttc.db'}"
    upgrade(url)
    db = Database(url)
    with db.transaction() as session:
        row, key = create_key(session, "acme")
        key_id = row.id
    app = create_app(Settings(database_url=url, auth_enabled=True), _NoDispatch())
    return Ui(app, db, key, key_id)


def _form_token(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match, page.text
    return match.group(1)


async def _log_in(client: httpx.AsyncClient, key: str, next_url: str = "/ui/jobs") -> Any:
    form = await client.get("/ui/login")
    origin = str(client.base_url).rstrip("/")
    return await client.post(
        "/ui/login",
        data={"key": key, "next": next_url, "csrf": _form_token(form)},
        headers={"Origin": origin},
    )


def test_login_starts_a_session_in_a_strict_http_only_cookie(ui: Ui) -> None:
    async def steps(client: httpx.AsyncClient) -> Any:
        resp = await _log_in(client, ui.key, "/ui/jobs?status=running")
        listed = await client.get("/v1/jobs")
        return resp, listed

    resp, listed = ui.run("http://ttc", steps)
    assert resp.status_code == 303 and resp.headers["location"] == "/ui/jobs?status=running"
    cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie
    assert ui.key not in cookie  # the cookie holds a session token, never the key
    assert listed.status_code == 200  # the API takes the session cookie
    with ui.db.session() as session:
        rows = session.query(UiSession).all()
        assert len(rows) == 1 and rows[0].key_id == ui.key_id
        token = cookie.split(";")[0].split("=", 1)[1]
        assert token not in rows[0].token_hash  # only its hash is stored

    secure = ui.run("https://ttc", lambda c: _log_in(c, ui.key))
    assert "Secure" in next(
        c for c in secure.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )


def test_login_needs_the_forms_signed_token(ui: Ui) -> None:
    async def steps(client: httpx.AsyncClient) -> list[httpx.Response]:
        await client.get("/ui/login")  # sets the nonce cookie
        out = []
        for token in ("", "0" * 64):
            out.append(
                await client.post(
                    "/ui/login",
                    data={"key": ui.key, "next": "/ui/jobs", "csrf": token},
                    headers={"Origin": "http://ttc"},
                )
            )
        # A nonce cookie of the attacker's choosing (a page on another port can set one
        # for this host) does not help without the server's signature.
        client.cookies.set(LOGIN_CSRF_COOKIE, "chosen-by-the-attacker")
        out.append(
            await client.post(
                "/ui/login",
                data={"key": ui.key, "csrf": "chosen-by-the-attacker"},
                headers={"Origin": "http://ttc"},
            )
        )
        return out

    for resp in ui.run("http://ttc", steps):
        assert resp.status_code == 303
        assert "error=expired" in resp.headers["location"]
        assert SESSION_COOKIE not in resp.headers.get("set-cookie", "")


def test_login_and_cookie_actions_from_another_origin_are_403(ui: Ui) -> None:
    async def steps(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
        form = await client.get("/ui/login")
        token = _form_token(form)
        out = {
            "login from another port": await client.post(
                "/ui/login",
                data={"key": ui.key, "csrf": token},
                headers={"Origin": "http://ttc:8081", "Sec-Fetch-Site": "same-site"},
            )
        }
        await _log_in(client, ui.key)
        for name, headers in {
            "same-site by Sec-Fetch-Site": {"Sec-Fetch-Site": "same-site"},
            "cross-site by Sec-Fetch-Site": {"Sec-Fetch-Site": "cross-site"},
            "another port by Origin": {"Origin": "http://ttc:8081"},
            "another scheme by Origin": {"Origin": "https://ttc"},
            "null Origin": {"Origin": "null"},
            "another port by Referer": {"Referer": "http://ttc:8081/attack.html"},
            "no Origin at all": {},
        }.items():
            out[name] = await client.post("/v1/jobs/nope/cancel", headers=headers)
        out["logout from another port"] = await client.post(
            "/ui/logout", headers={"Origin": "http://ttc:8081"}
        )
        # The same actions from this origin pass the check (404: no such job).
        out["same origin"] = await client.post(
            "/v1/jobs/nope/cancel", headers={"Origin": "http://ttc"}
        )
        out["same origin by Sec-Fetch-Site"] = await client.post(
            "/v1/jobs/nope/cancel", headers={"Sec-Fetch-Site": "same-origin"}
        )
        # A key in a header is not cookie-authenticated: no Origin needed.
        out["bearer key"] = await client.post(
            "/v1/jobs/nope/cancel",
            headers={"Authorization": f"Bearer {ui.key}", "Origin": "http://evil:1"},
        )
        out["still logged in"] = await client.get("/v1/jobs")
        return out

    answers = ui.run("http://ttc", steps)
    for name, resp in answers.items():
        if name in ("same origin", "same origin by Sec-Fetch-Site", "bearer key"):
            assert resp.status_code == 404, (name, resp.text)
        elif name == "still logged in":
            assert resp.status_code == 200, resp.text  # the forged logout did nothing
        else:
            assert resp.status_code == 403, (name, resp.text)
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert "CSRF" in resp.json()["detail"]


def test_logout_and_key_revocation_end_the_session(ui: Ui) -> None:
    async def logout(client: httpx.AsyncClient) -> list[int]:
        await _log_in(client, ui.key)
        token = client.cookies[SESSION_COOKIE]
        before = (await client.get("/v1/jobs")).status_code
        await client.post("/ui/logout", headers={"Origin": "http://ttc"})
        # The browser drops the cookie; one kept (stolen) is refused all the same.
        client.cookies.set(SESSION_COOKIE, token)
        after = (await client.get("/v1/jobs")).status_code
        page = (await client.get("/ui/jobs")).status_code
        return [before, after, page]

    assert ui.run("http://ttc", logout) == [200, 401, 303]

    async def revoked(client: httpx.AsyncClient) -> list[int]:
        await _log_in(client, ui.key)
        before = (await client.get("/v1/jobs")).status_code
        with ui.db.transaction() as session:
            revoke_key(session, ui.key_id)
        after = (await client.get("/v1/jobs")).status_code
        page = (await client.get("/ui/jobs")).status_code
        return [before, after, page]

    assert ui.run("http://ttc", revoked) == [200, 401, 303]
    with ui.db.session() as session:
        assert all(row.revoked_at is not None for row in session.query(UiSession))


def test_a_refused_key_goes_back_to_the_form(ui: Ui) -> None:
    for key, error in (("ttc_nope", "invalid"), ("", "missing")):
        resp = ui.run("http://ttc", lambda c, k=key: _log_in(c, k))
        assert resp.status_code == 303
        assert resp.headers["location"] == f"/ui/login?next=%2Fui%2Fjobs&error={error}"
        assert SESSION_COOKIE not in resp.headers.get("set-cookie", "")


def test_the_raw_key_in_a_cookie_is_not_a_login(ui: Ui) -> None:
    async def steps(client: httpx.AsyncClient) -> int:
        client.cookies.set(SESSION_COOKIE, ui.key)
        client.cookies.set("ttc_key", ui.key)
        return (await client.get("/v1/jobs")).status_code

    assert ui.run("http://ttc", steps) == 401


@pytest.mark.parametrize(
    ("asked", "sent"),
    [
        ("/ui/jobs/abc/tree", "/ui/jobs/abc/tree"),
        ("https://evil.example/ui/", "/ui/jobs"),
        ("//evil.example/ui/", "/ui/jobs"),
        ("/v1/jobs", "/ui/jobs"),
        (None, "/ui/jobs"),
    ],
)
def test_login_only_returns_into_the_ui(asked: str | None, sent: str) -> None:
    assert safe_next(asked) == sent
