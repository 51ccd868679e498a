"""Steering from the browser: prune a subtree of a running job and see it marked pruned,
pause, resume and cancel it, and expand a node of a finished job again."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.helpers import wait_until
from tests.ui.conftest import UiStack, assert_readable
from ttc_sim.tasks import gsm8k_problems, synthetic_problems

pytestmark = pytest.mark.integration

PRM = {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"}
TERMINAL = {"succeeded", "failed", "cancelled"}


def _events(ui_stack: UiStack, job_id: str) -> list[dict[str, Any]]:
    return ui_stack.api.get(f"/v1/jobs/{job_id}/events").json()["data"]  # type: ignore[no-any-return]


def test_prune_a_running_job_then_pause_resume_and_cancel(page: Any, ui_stack: UiStack) -> None:
    problem = synthetic_problems(1, seed=9, steps=6)[0]
    job_id = ui_stack.submit(
        endpoint="sim-slow",  # 1.5 s a step: the job is still running while we act
        strategy="beam_search",
        prompt=problem.question,
        params={"n": 4, "beam_width": 2, "max_depth": 8},
        prm=PRM,
        reference=problem.answer,
        seed=9,
    )
    wait_until(lambda: ui_stack.job(job_id)["progress"]["nodes"] >= 4, timeout=60)
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}/tree")
    target = page.locator('[role=treeitem][aria-level="2"]').first
    expect(target).to_be_visible()
    node_id = target.get_attribute("data-node-id")
    target.locator(".steptext").click()
    page.click("#node-prune")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.click("#confirm-ok")
    row = page.locator(f'[role=treeitem][data-node-id="{node_id}"]')
    expect(row.locator(".badge")).to_have_text("pruned")
    expect(page.locator("#detail-title .badge")).to_have_text("pruned")
    assert_readable(page)
    assert ui_stack.api.get(f"/v1/jobs/{job_id}/nodes/{node_id}").json()["status"] == "pruned"
    kinds = [(e["kind"], e["data"].get("status")) for e in _events(ui_stack, job_id)]
    pruned_at = kinds.index(("node_pruned", None))
    assert not any(s in TERMINAL for _, s in kinds[:pruned_at]), "the job was running"

    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}")
    status = page.locator("#job-status .badge")
    page.click("#act-pause")
    page.click("#confirm-ok")
    expect(status).to_have_text("paused")
    page.click("#act-resume")
    page.click("#confirm-ok")
    expect(status).not_to_have_text("paused")
    page.click("#act-cancel")
    expect(page.locator("#confirm-dialog")).to_contain_text("Stop this job")
    page.click("#confirm-ok")
    expect(status).to_have_text("cancelled")
    assert ui_stack.job(job_id)["status"] == "cancelled"
    expect(page.locator("#timeline")).to_contain_text("status → cancelled")


def test_expand_a_node_again_shows_new_children_live(page: Any, ui_stack: UiStack) -> None:
    problem = gsm8k_problems()[5]
    job_id = ui_stack.submit(strategy="self_consistency", prompt=problem.question, params={"n": 3})
    job = ui_stack.finished(job_id)
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}/tree")
    children = page.locator('[role=treeitem][aria-level="2"]')
    expect(children).to_have_count(3)
    page.locator(f'[data-node-id="{job["root_node_id"]}"] .steptext').click()
    page.click("#node-expand")
    page.fill("#expand-k", "2")
    page.click("#confirm-ok")
    expect(children).to_have_count(5, timeout=30_000)  # landed, and shown without a reload
    assert ui_stack.finished(job_id)["progress"]["nodes"] == 5
