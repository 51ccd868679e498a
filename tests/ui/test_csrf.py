"""CSRF against the real browser: a page on another port of the same host (the same
*site*, so Chromium sends the ``SameSite=Strict`` login cookie along) tries to cancel a
job with a form post and with a ``no-cors`` fetch. Both are 403 and the job is untouched;
the same action from the UI's own page goes through."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.helpers import wait_until
from tests.ui.conftest import VIEWPORT, UiStack
from ttc_api.csrf import SESSION_COOKIE

pytestmark = pytest.mark.integration


class AttackerSite:
    """A second local HTTP server (another port: same site, another origin) serving the
    attacker's pages, whose HTML is set per test."""

    def __init__(self) -> None:
        pages: dict[str, str] = {}
        self.pages = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "not found").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite()
    try:
        yield site
    finally:
        site.close()


@pytest.fixture
def victim(browser: Any, ui_stack: UiStack) -> Iterator[Any]:
    """A browser context logged in to the UI (its session cookie set)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    context.add_cookies(
        [{"name": SESSION_COOKIE, "value": ui_stack.login_session(), "url": ui_stack.url}]
    )
    try:
        yield context
    finally:
        context.close()


def _paused_job(ui_stack: UiStack) -> str:
    job_id = ui_stack.submit(
        endpoint="sim-slow", strategy="self_consistency", prompt="2+2?", params={"n": 4}
    )
    resp = ui_stack.api.post(f"/v1/jobs/{job_id}/pause")
    assert resp.status_code == 200, resp.text
    wait_until(lambda: ui_stack.job(job_id)["status"] == "paused", timeout=30)
    return job_id


def test_cross_origin_form_post_and_no_cors_fetch_are_refused(
    victim: Any, attacker: AttackerSite, ui_stack: UiStack
) -> None:
    job_id = _paused_job(ui_stack)
    target = f"{ui_stack.url}/v1/jobs/{job_id}/cancel"
    attacker.pages["/form.html"] = (
        f'<form id="f" method="post" action="{target}"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    attacker.pages["/fetch.html"] = (
        f"<script>fetch({target!r}, {{method: 'POST', mode: 'no-cors', "
        "credentials: 'include'}).then(() => { document.title = 'sent'; });</script>"
    )
    # The control: from the attacker's page the browser does send the login cookie (a
    # same-site request), so a read with it is a 200, not a 401.
    reader = f"{ui_stack.url}/v1/jobs/{job_id}"
    attacker.pages["/read.html"] = (
        f"<script>fetch({reader!r}, {{mode: 'no-cors', credentials: 'include'}});</script>"
    )
    page = victim.new_page()
    with page.expect_response(lambda r: r.url == reader) as control:
        page.goto(attacker.url + "/read.html")
    assert control.value.status == 200
    for attack in ("/form.html", "/fetch.html"):
        with page.expect_response(lambda r: r.url == target) as answer:
            page.goto(attacker.url + attack)
        resp = answer.value
        # 403 from the CSRF check (it answers only requests that carry the cookie)...
        assert resp.status == 403, (attack, resp.status)
        # ... sent from the attacker's page. (Playwright does not always report the
        # headers Chromium adds late, Origin and Sec-Fetch-Site among them.)
        headers = resp.request.all_headers()
        assert headers.get("referer", "").startswith(attacker.url), (attack, headers)
        assert ui_stack.job(job_id)["status"] == "paused", attack

    # The same action from the UI's own job page works.
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}")
    page.click("#act-cancel")
    page.click("#confirm-ok")
    expect(page.locator("#job-status .badge")).to_have_text("cancelled")
    assert ui_stack.job(job_id)["status"] == "cancelled"


def test_a_forged_logout_leaves_the_session(
    victim: Any, attacker: AttackerSite, ui_stack: UiStack
) -> None:
    attacker.pages["/logout.html"] = (
        f'<form id="f" method="post" action="{ui_stack.url}/ui/logout"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    page = victim.new_page()
    with page.expect_response(lambda r: r.url.endswith("/ui/logout")) as answer:
        page.goto(attacker.url + "/logout.html")
    assert answer.value.status == 403
    page.goto(f"{ui_stack.url}/ui/jobs")
    expect(page.locator(".logout button")).to_be_visible()  # still logged in
