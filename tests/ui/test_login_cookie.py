"""The login form on its own (no browser): the cookie's flags, Secure over https, the
redirects of a refused key, and no open redirect after login."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from ttc_api.app import create_app
from ttc_api.ui.access import safe_next
from ttc_cli.migrate import upgrade
from ttc_core.auth import create_key
from ttc_core.db import Database
from ttc_core.settings import Settings


class _NoDispatch:
    def submit(self, job_id: str) -> None: ...

    def dispatch(self, followups: Any) -> None: ...

    def close(self) -> None: ...


@pytest.fixture
def app_and_key(tmp_path: Path) -> tuple[Any, str]:
    url = f"sqlite:///{tmp_path / 'ttc.db'}"
    upgrade(url)
    with Database(url).transaction() as session:
        _, key = create_key(session, "acme")
    return create_app(Settings(database_url=url, auth_enabled=True), _NoDispatch()), key


def _post(app: Any, base_url: str, path: str, form: dict[str, str]) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            return await client.post(path, data=form)

    # In a thread of its own: Playwright's sync API may hold this thread's event loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, send).result()


def test_login_sets_a_strict_http_only_cookie_secure_over_https(
    app_and_key: tuple[Any, str],
) -> None:
    app, key = app_and_key
    plain = _post(app, "http://ttc", "/ui/login", {"key": key, "next": "/ui/jobs?status=running"})
    assert plain.status_code == 303 and plain.headers["location"] == "/ui/jobs?status=running"
    cookie = plain.headers["set-cookie"]
    assert cookie.startswith(f"ttc_key={key};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie
    secure = _post(app, "https://ttc", "/ui/login", {"key": key})
    assert "Secure" in secure.headers["set-cookie"]


def test_a_refused_key_goes_back_to_the_form(app_and_key: tuple[Any, str]) -> None:
    app, _ = app_and_key
    for form, error in (({"key": "ttc_nope"}, "invalid"), ({"key": ""}, "missing")):
        resp = _post(app, "http://ttc", "/ui/login", {**form, "next": "/ui/jobs"})
        assert resp.status_code == 303
        assert resp.headers["location"] == f"/ui/login?next=%2Fui%2Fjobs&error={error}"
        assert "set-cookie" not in resp.headers


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
