"""A finished beam search in the browser: the job page, the tree inspector (three levels
expanded, node detail, keyboard navigation), the graph and the answer distribution (at
its old "scaling" address too, which redirects)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import UiStack, assert_readable
from ttc_sim.tasks import gsm8k_problems, synthetic_problems

pytestmark = pytest.mark.integration

PRM = {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"}


@pytest.fixture(scope="module")
def beam_job(ui_stack: UiStack) -> dict[str, Any]:
    """A finished beam search, and the path (root first) to its answer."""
    problem = synthetic_problems(1, seed=5, steps=5)[0]
    job_id = ui_stack.submit(
        strategy="beam_search",
        prompt=problem.question,
        params={"n": 4, "beam_width": 2, "max_depth": 8},
        prm=PRM,
        reference=problem.answer,
        seed=5,
    )
    job = ui_stack.finished(job_id)
    assert job["status"] == "succeeded", job
    best = ui_stack.api.get(f"/v1/jobs/{job_id}/nodes/{job['result']['node_id']}").json()
    assert len(best["path"]) >= 5, "the test needs an answer at depth 4 or deeper"
    return {"job": job, "path": best["path"]}


def _row(page: Any, node_id: str) -> Any:
    return page.locator(f'[role=treeitem][data-node-id="{node_id}"]')


def test_job_page_shows_progress_best_answer_and_timeline(
    page: Any, ui_stack: UiStack, beam_job: dict[str, Any]
) -> None:
    job, path = beam_job["job"], beam_job["path"]
    page.goto(f"{ui_stack.url}/ui/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#best-answer")).to_have_text(job["result"]["answer"])
    expect(page.locator("#best-path li")).to_have_count(len(path) - 1)  # the steps
    expect(page.locator("#timeline")).to_contain_text("status → succeeded")
    expect(page.locator("#usage")).to_contain_text(f"{job['usage']['requests']:,}")
    expect(page.locator("#parameters")).to_contain_text("beam_width")
    expect(page.locator("#act-cancel")).to_be_disabled()  # a finished job
    expect(page.locator("#deliveries")).to_contain_text("No deliveries yet.")  # no webhook
    expect(page.locator("#deliveries-link")).to_have_attribute(
        "href", f"/v1/jobs/{job['id']}/deliveries"
    )
    expect(page.locator("a[href$='/flower'], a:has-text('Flower')")).to_have_count(1)
    assert_readable(page)


def test_tree_expand_three_levels_and_open_node_detail(
    page: Any, ui_stack: UiStack, beam_job: dict[str, Any]
) -> None:
    job, path = beam_job["job"], beam_job["path"]
    page.goto(f"{ui_stack.url}/ui/jobs/{job['id']}/tree")
    expect(_row(page, path[0]["id"])).to_have_attribute("aria-expanded", "true")  # the root
    for level, node in enumerate(path[1:4], start=2):
        row = _row(page, node["id"])
        expect(row).to_have_attribute("aria-level", str(level))
        expect(row).to_have_attribute("aria-expanded", "false")
        row.locator(".twisty").click()
        expect(row).to_have_attribute("aria-expanded", "true")
    deepest = _row(page, path[4]["id"])
    expect(deepest).to_have_attribute("aria-level", "5")
    for node in path[1:5]:
        expect(_row(page, node["id"])).to_contain_class("best")  # the best path
    deepest.locator(".steptext").click()
    expect(page.locator("#detail-title")).to_contain_text("at depth 4")
    full_text = "".join(n["text"] for n in path[1:5])
    expect(page.locator("#detail-path-text")).to_have_text(full_text)
    expect(page.locator("#detail table.path tbody tr")).to_have_count(4)  # per-step scores
    expect(page.locator("#detail")).to_contain_text("Finish reason")
    assert page.locator("[role=treeitem]").count() < 500
    assert_readable(page)


def test_tree_keyboard_navigation(page: Any, ui_stack: UiStack, beam_job: dict[str, Any]) -> None:
    job, path = beam_job["job"], beam_job["path"]
    page.goto(f"{ui_stack.url}/ui/jobs/{job['id']}/tree")
    tree = page.locator("#tree")
    expect(_row(page, path[1]["id"])).to_be_visible()
    tree.focus()
    active = page.locator('[role=treeitem][aria-selected="true"]')
    expect(active).to_have_attribute("data-node-id", path[0]["id"])  # starts at the root
    # Down to the first-level node on the best path (it has children).
    for _ in range(50):
        if active.get_attribute("data-node-id") == path[1]["id"]:
            break
        page.keyboard.press("ArrowDown")
    expect(active).to_have_attribute("data-node-id", path[1]["id"])
    expect(tree).to_have_attribute("aria-activedescendant", f"row-{path[1]['id']}")
    page.keyboard.press("ArrowRight")  # expands
    expect(active).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowRight")  # enters: the first child
    expect(active).to_have_attribute("aria-level", "3")
    page.keyboard.press("ArrowLeft")  # back to the parent
    expect(active).to_have_attribute("data-node-id", path[1]["id"])
    page.keyboard.press("ArrowLeft")  # collapses
    expect(active).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("ArrowUp")
    expect(active).to_have_attribute("aria-level", "2")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")  # opens the detail
    expect(page.locator("#detail-title")).to_contain_text("at depth 1")
    page.keyboard.press("Home")
    expect(active).to_have_attribute("data-node-id", path[0]["id"])


def test_graph_view_of_a_subtree(page: Any, ui_stack: UiStack, beam_job: dict[str, Any]) -> None:
    job, path = beam_job["job"], beam_job["path"]
    total = job["progress"]["nodes"] + 1
    page.goto(f"{ui_stack.url}/ui/jobs/{job['id']}/graph")
    expect(page.locator("#graph svg rect.gnode")).to_have_count(min(total, 300))
    expect(page.locator("#graph rect.gnode.best")).to_have_count(len(path))
    assert_readable(page)
    page.goto(f"{ui_stack.url}/ui/jobs/{job['id']}/graph?node={path[2]['id']}")
    below = ui_stack.api.get(
        f"/v1/jobs/{job['id']}/nodes", params={"under": path[2]["id"], "limit": 1000}
    ).json()["data"]
    expect(page.locator("#graph svg rect.gnode")).to_have_count(len(below))


def test_answer_distribution_of_a_vote(page: Any, ui_stack: UiStack) -> None:
    problem = gsm8k_problems()[7]
    job_id = ui_stack.submit(
        strategy="self_consistency",
        prompt=problem.question,
        params={"n": 12},
        reference=problem.answer,
    )
    job = ui_stack.finished(job_id)
    votes = job["result"]["details"]["votes"]
    # The page's old address ("Scaling") redirects to its name for what it shows.
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}/scaling")
    assert page.url == f"{ui_stack.url}/ui/jobs/{job_id}/answers"
    expect(page.locator("h1")).to_contain_text("Answer distribution")
    expect(page.locator(".jobnav a[aria-current=page]")).to_have_text("Answers")
    expect(page.locator("#answers-chart g.bar")).to_have_count(len(votes))
    expect(page.locator("#answers-chart g.bar.winner")).to_have_count(1)
    expect(page.locator("#score-chart rect.hist-all")).to_have_count(20)
    expect(page.locator("#answers-note")).to_contain_text("12 terminal nodes")
    assert_readable(page)
