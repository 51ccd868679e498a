"""Log in with an API key, see the jobs list, filter it; the list's data route pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import UiStack, Watched, assert_readable
from ttc_sim.tasks import gsm8k_problems

pytestmark = pytest.mark.integration


def _self_consistency(ui_stack: UiStack, index: int) -> str:
    problem = gsm8k_problems()[index]
    return ui_stack.submit(
        strategy="self_consistency",
        prompt=problem.question,
        params={"n": 4},
        reference=problem.answer,
    )


def test_login_then_jobs_list(anon_page: Watched, ui_stack: UiStack) -> None:
    job_id = _self_consistency(ui_stack, 1)
    assert ui_stack.finished(job_id)["status"] == "succeeded"
    page = anon_page.page
    page.goto(ui_stack.url + "/ui/jobs?status=succeeded")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.fill("#key", "ttc_not_a_key")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("That key is not valid.")
    assert_readable(page)
    page.fill("#key", ui_stack.admin_key)
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui/jobs\?status=succeeded$"))
    cookie = next(c for c in page.context.cookies() if c["name"] == "ttc_key")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"

    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text("self_consistency")
    expect(row).to_contain_text("4/4")  # progress: nodes of planned samples
    assert_readable(page)
    page.select_option("#filter-strategy", "beam_search")
    expect(row).to_have_count(0)
    page.select_option("#filter-strategy", "self_consistency")
    expect(row).to_have_count(1)
    expect(page).to_have_url(re.compile(r"strategy=self_consistency"))
    row.locator("a").click()
    expect(page).to_have_url(re.compile(rf"/ui/jobs/{job_id}$"))
    expect(page.locator("#job-status")).to_have_text("succeeded")

    page.click(".logout button")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto(ui_stack.url + "/ui/jobs")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))


def test_jobs_data_route_pages_and_filters(ui_stack: UiStack) -> None:
    ids = {_self_consistency(ui_stack, i) for i in (2, 3, 4)}
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"strategy": "self_consistency", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = ui_stack.api.get("/ui/api/jobs", params=params).json()
        assert len(page["data"]) <= 2
        seen += [j["id"] for j in page["data"]]
        assert all(j["strategy"] == "self_consistency" for j in page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert ids <= set(seen) and len(seen) == len(set(seen))
    bad = ui_stack.api.get("/ui/api/jobs", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"
    anonymous = ui_stack.api.get("/ui/api/jobs", headers={"Authorization": ""})
    assert anonymous.status_code == 401
