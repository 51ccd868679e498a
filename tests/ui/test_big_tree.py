"""The tree inspector at 100,000 nodes: opens fast, pages children lazily, keeps the DOM
small while scrolling, searches and jumps to the best node."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.bigtree import FIRST_LEVEL, SECOND_LEVEL, insert_big_tree
from tests.ui.conftest import UiStack, assert_readable

pytestmark = pytest.mark.integration

ROW_HEIGHT = 28
MAX_DOM_ROWS = 500


@pytest.fixture(scope="module")
def big_job(ui_stack: UiStack) -> tuple[str, list[str]]:
    return insert_big_tree(ui_stack.database_url)


def _dom_rows(page: Any) -> int:
    return int(page.locator("[role=treeitem]").count())


def test_100k_tree_opens_fast_and_stays_virtual(
    page: Any, ui_stack: UiStack, big_job: tuple[str, list[str]]
) -> None:
    job_id, best_path = big_job
    assert ui_stack.job(job_id)["progress"]["nodes"] == FIRST_LEVEL * (SECOND_LEVEL + 1)
    started = time.monotonic()
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}/tree")
    page.wait_for_selector('[role=treeitem][aria-level="2"]')
    elapsed = time.monotonic() - started
    print(f"100,000-node tree: first rows {elapsed:.2f}s after navigation")
    assert elapsed < 2.0, f"first rows after {elapsed:.2f}s"
    assert _dom_rows(page) < MAX_DOM_ROWS

    # The last first-level node: its children load page by page at the bottom.
    tree = page.locator("#tree")
    tree.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    last = page.locator(f'[role=treeitem][aria-level="2"]:has-text("Step {FIRST_LEVEL - 1}:")')
    last.locator(".twisty").click()
    expect(last).to_have_attribute("aria-expanded", "true")
    spacer = page.locator("#tree-spacer")
    want = (1 + FIRST_LEVEL + SECOND_LEVEL) * ROW_HEIGHT  # every row, no "more" row left
    most = 0
    for _ in range(40):  # each scroll to the end loads the next page of children
        tree.evaluate("el => { el.scrollTop = el.scrollHeight; }")
        page.wait_for_timeout(100)
        most = max(most, _dom_rows(page))
        if spacer.evaluate("el => el.offsetHeight") == want:
            break
    assert spacer.evaluate("el => el.offsetHeight") == want
    assert most < MAX_DOM_ROWS, most
    tree.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    last_row = page.locator(
        f'[role=treeitem][aria-level="3"]:has-text("Answer {FIRST_LEVEL - 1}.{SECOND_LEVEL - 1}:")'
    )
    expect(last_row).to_be_visible()

    page.click("#jump-best")
    best = page.locator(f'[role=treeitem][data-node-id="{best_path[-1]}"]')
    expect(best).to_be_visible()
    expect(best).to_have_attribute("aria-selected", "true")
    expect(page.locator("#detail-title")).to_contain_text("at depth 2")
    expect(best).to_have_attribute("aria-level", "3")  # its ancestors are expanded
    expect(best).to_contain_class("best")
    assert_readable(page)
    assert _dom_rows(page) < MAX_DOM_ROWS


def test_100k_tree_search_by_text_score_and_status(
    page: Any, ui_stack: UiStack, big_job: tuple[str, list[str]]
) -> None:
    job_id, best_path = big_job
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}/tree")
    expect(page.locator('[role=treeitem][aria-level="2"]').first).to_be_visible()
    page.fill("#f-text", "Answer 37.512:")
    page.click("#tree-filters button[type=submit]")
    results = page.locator("[role=treeitem][data-node-id]")
    expect(results).to_have_count(1)
    expect(results).to_have_attribute("data-node-id", best_path[-1])
    page.fill("#f-text", "")
    page.select_option("#f-status", "terminal")
    page.fill("#f-min", "0.96")
    page.click("#tree-filters button[type=submit]")
    expect(results).to_have_count(1)  # only the best terminal scores above 0.95
    page.fill("#f-min", "0.9")
    page.click("#tree-filters button[type=submit]")
    expect(page.locator("#tree-note")).to_contain_text("+ matching nodes")  # more pages
    assert _dom_rows(page) < MAX_DOM_ROWS
    page.fill("#f-max", "0.1")
    page.click("#tree-filters button[type=submit]")
    expect(page.locator("#tree-note")).to_contain_text("nothing can match")
    page.click("#f-clear")
    expect(page.locator('[role=treeitem][aria-level="2"]')).not_to_have_count(0)


def test_nodes_api_pages_filters_and_counts_children(
    ui_stack: UiStack, big_job: tuple[str, list[str]]
) -> None:
    job_id, (root, best_parent, best) = big_job
    nodes = f"/v1/jobs/{job_id}/nodes"
    page = ui_stack.api.get(nodes, params={"parent_id": root, "limit": 50}).json()
    assert len(page["data"]) == 50 and page["next_cursor"]
    assert {n["children"] for n in page["data"]} == {SECOND_LEVEL}
    top = ui_stack.api.get(nodes, params={"is_terminal": "true", "min_score": 0.96}).json()
    assert [n["id"] for n in top["data"]] == [best]
    text = ui_stack.api.get(nodes, params={"q": "Answer 37.512:"}).json()
    assert [n["id"] for n in text["data"]] == [best]
    under = ui_stack.api.get(nodes, params={"under": best_parent, "limit": 1000}).json()
    assert len(under["data"]) == SECOND_LEVEL + 1 and under["next_cursor"] is None
    assert under["data"][0]["id"] == best_parent  # breadth-first: the node first
    for params, field in (
        ({"min_score": 2, "max_score": 1}, "min_score"),
        ({"parent_id": root, "under": best_parent}, "under"),
        ({"status": "bogus"}, "status"),
        ({"parent_id": root, "cursor": "WyJ4Il0"}, "cursor"),
        ({"q": "six\x00seven"}, "q"),
        ({"under": "a\x00"}, "under"),
    ):
        bad = ui_stack.api.get(nodes, params=params)
        assert bad.status_code == 422 and bad.json()["field"] == field, (params, bad.text)
