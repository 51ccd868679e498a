"""Browser tests of the admin UI, all real: Playwright driving Debian's Chromium against
the API server process (auth on), a Celery worker process, a fresh Postgres database and
the simulated endpoint over HTTP.

Without Chromium the tests skip, except in CI (``CI`` set), where ``.ci/run`` installs
it and they must run. Every page a test opens fails the test on any console error or
uncaught page error; a screenshot of each test's last page goes to test-artifacts/ui/.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.helpers import REDIS_BASE, fresh_postgres, wait_until
from ttc_api.csrf import SESSION_COOKIE
from ttc_cli.stack import run_stack
from ttc_core.service.auth import create_key
from ttc_core.service.ui_sessions import create_session
from ttc_core.store.db import Database
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
REDIS_DB = 7
VIEWPORT = {"width": 1280, "height": 800}
#: Each step of a job on this endpoint takes over a second: a job that is still running
#: when the browser acts on it.
SLOW_MODEL = "sim-gsm8k;base_latency_s=1.5;per_token_latency_s=0"


def _chromium() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI (.ci/run installs it)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); CI runs these")


@dataclass
class UiStack:
    url: str
    database_url: str
    admin_key: str
    admin_key_id: str
    api: httpx.Client

    def login_session(self, key_id: str | None = None) -> str:
        """A session token as the login form makes one (for the admin key by default)."""
        with Database(self.database_url).transaction() as session:
            return create_session(session, key_id or self.admin_key_id, ttl_s=3600)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.api.get(f"/v1/jobs/{job_id}").json()  # type: ignore[no-any-return]

    def submit(self, **body: Any) -> str:
        resp = self.api.post("/v1/jobs", json={"endpoint": "sim", **body})
        assert resp.status_code == 202, resp.text
        return resp.json()["id"]  # type: ignore[no-any-return]

    def finished(self, job_id: str, timeout: float = 90) -> dict[str, Any]:
        done = ("succeeded", "failed", "cancelled")
        return wait_until(  # type: ignore[no-any-return]
            lambda: (j := self.job(job_id))["status"] in done and j, timeout=timeout
        )


@pytest.fixture(scope="session")
def chromium() -> str:
    return _chromium()


@pytest.fixture(scope="session")
def ui_stack(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    logs = Path(tmp_path_factory.mktemp("ui-logs"))
    sim_config = SimConfig(base_latency_s=0.01, per_token_latency_s=0.0, slots=64)
    with (
        SimServer(sim_config) as sim,
        fresh_postgres() as pg_url,
        run_stack(
            database_url=pg_url,
            broker_url=broker,
            log_dir=logs,
            sim_url=sim.url,
            extra_endpoints={"sim-slow": {"model": SLOW_MODEL, "max_n_per_request": 8}},
            extra_env={"TTC_AUTH_ENABLED": "true", "TTC_EXPAND_BATCH_SAMPLES": "8"},
        ) as running,
    ):
        with Database(pg_url).transaction() as session:
            row, key = create_key(session, "ops", admin=True, name="ui tests")
            key_id = row.id
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=running.api_url, headers=headers, timeout=30) as client:
            try:
                yield UiStack(running.api_url, pg_url, key, key_id, client)
            finally:
                for proc in running.procs:
                    if "Traceback" in proc.log():
                        print(f"--- {proc.log_path.name} ---\n{proc.log()[-4000:]}")


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    """One Chromium per test module: Playwright's sync API holds an event loop on this
    thread while it runs, which later tests (``anyio.run``) must not find there."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A browser page whose console errors and uncaught errors are collected."""

    page: Any
    errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _open_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Watched]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    page = context.new_page()
    watched = Watched(page)
    page.on(
        "console",
        lambda msg: watched.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: watched.errors.append(f"page error: {exc}"))
    try:
        yield watched
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("/", "_")
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        finally:
            context.close()
    assert not watched.errors, "browser errors:\n" + "\n".join(watched.errors)


@pytest.fixture
def anon_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Watched]:
    """A page with no login cookie (its errors are checked after the test)."""
    with _open_page(browser, request) as watched:
        yield watched


@pytest.fixture
def page(browser: Any, ui_stack: UiStack, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A logged-in page (a session as the login form starts one, its cookie set directly)."""
    with _open_page(browser, request) as watched:
        token = ui_stack.login_session()
        watched.page.context.add_cookies(
            [{"name": SESSION_COOKIE, "value": token, "url": ui_stack.url}]
        )
        yield watched.page


@pytest.fixture(scope="session", autouse=True)
def _clean_artifacts() -> None:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)


#: WCAG 2 contrast of every visible text element against the background it sits on
#: (alpha layers composited up to the first opaque ancestor); SVG and disabled controls
#: are left out (WCAG exempts disabled controls). Returns the offenders.
_CONTRAST_JS = """
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = ({ r, g, b }) => {
    const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) {
        layers.push(c);
        if (c.a >= 1) break;
      }
    }
    let base = { r: 255, g: 255, b: 255 };
    for (const c of layers.reverse()) {
      base = { r: c.r * c.a + base.r * (1 - c.a), g: c.g * c.a + base.g * (1 - c.a),
               b: c.b * c.a + base.b * (1 - c.a) };
    }
    return base;
  };
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg") || el.closest(":disabled")) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!box.width || !box.height || style.visibility === "hidden") continue;
    const fg = lum(parse(style.color));
    const bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      const text = el.textContent.trim().slice(0, 40);
      bad.push(`${el.tagName}.${el.className} ${ratio.toFixed(2)}: ${text}`);
    }
  }
  return bad;
}
"""


def assert_readable(page: Any) -> None:
    """Every visible text on the page meets WCAG AA contrast (4.5:1, 3:1 for large), and
    the page fits the 1280 px wide window (no sideways scrolling)."""
    offenders = page.evaluate(_CONTRAST_JS)
    assert not offenders, "text below WCAG AA contrast:\n" + "\n".join(offenders)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"], f"the page is {width}px wide"
