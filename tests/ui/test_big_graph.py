"""The graph view at 10,000 nodes (a finished MCTS job): it opens fitted to the root and
the best path, paints in under 2 s, zooms, fits, pans without long frames, collapses big
subtrees with a count and opens them on a click. The tree page says why the answer's
path won, with the most-visited root child's numbers beside it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.bigmcts import TOTAL, insert_big_mcts
from tests.ui.conftest import UiStack, assert_readable

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mcts_job(ui_stack: UiStack) -> tuple[str, list[str]]:
    return insert_big_mcts(ui_stack.database_url)


def _inside(page: Any, selector: str) -> bool:
    """Every element matching ``selector`` lies inside the graph's visible area."""
    return bool(
        page.evaluate(
            """(sel) => {
              const frame = document.getElementById("graph").getBoundingClientRect();
              const els = [...document.querySelectorAll(sel)];
              return els.length > 0 && els.every((el) => {
                const r = el.getBoundingClientRect();
                return r.left >= frame.left - 1 && r.right <= frame.right + 1 &&
                       r.top >= frame.top - 1 && r.bottom <= frame.bottom + 1;
              });
            }""",
            selector,
        )
    )


def test_graph_of_10k_nodes_opens_on_the_best_path(
    page: Any, ui_stack: UiStack, mcts_job: tuple[str, list[str]]
) -> None:
    job_id, path = mcts_job
    assert ui_stack.job(job_id)["progress"]["nodes"] == TOTAL == 10_000
    started = time.monotonic()
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}/graph")
    page.wait_for_selector("#graph[data-ready=true]")
    first_paint = time.monotonic() - started
    print(f"10,000-node graph: first paint {first_paint:.2f}s after navigation")
    assert first_paint < 2.0, first_paint
    graph = page.locator("#graph")
    boxes = page.locator("#graph g.gbox")
    # The root and the whole best path are drawn and visible without scrolling.
    for node_id in path:
        expect(
            page.locator(f'#graph g.gbox[data-node-id="{node_id}"] rect.gnode.best')
        ).to_have_count(1)
    assert _inside(page, "#graph rect.gnode.best")
    assert page.evaluate("document.scrollingElement.scrollHeight <= innerHeight + 4")
    # Big subtrees are collapsed with a count; far fewer boxes than nodes.
    drawn = boxes.count()
    assert 20 <= drawn <= 400, drawn
    expect(page.locator("#graph g.gbox.collapsed").first).to_be_visible()
    expect(page.locator("#graph .gcount-text").first).to_contain_text("+")
    # Boxes show the first words, the score, visits and value, and duplicate marks.
    root_child = page.locator(f'#graph g.gbox[data-node-id="{path[1]}"]')
    expect(root_child).to_contain_text("N 233")
    expect(root_child).to_contain_text("Q 0.381")
    page.wait_for_selector("#graph[data-loaded=true]", timeout=30_000)
    assert "10,001 nodes loaded" in page.locator("#graph-note").inner_text()

    # Zoom and fit.
    scale = float(graph.get_attribute("data-scale"))
    page.click("#g-zoom-in")
    expect(graph).not_to_have_attribute("data-scale", f"{scale:.4f}")
    zoomed = float(graph.get_attribute("data-scale"))
    assert zoomed > scale
    graph.hover()
    page.mouse.wheel(0, 600)  # wheel out
    page.wait_for_timeout(100)
    assert float(graph.get_attribute("data-scale")) < zoomed
    page.click("#g-fit")
    page.wait_for_timeout(100)
    assert _inside(page, "#graph g.gbox")  # everything drawn fits
    page.click("#g-best")
    page.wait_for_timeout(100)
    assert _inside(page, "#graph rect.gnode.best")

    # Panning: no frame longer than 200 ms (measured in the page with rAF).
    page.evaluate(
        """() => {
          window.__frames = [];
          let last = performance.now();
          const tick = (t) => {
            window.__frames.push(t - last);
            last = t;
            if (window.__frames.length < 400) requestAnimationFrame(tick);
          };
          requestAnimationFrame(tick);
        }"""
    )
    rect = graph.bounding_box()
    cx, cy = rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    for i in range(40):
        page.mouse.move(cx - 8 * i, cy - 3 * i)
    page.mouse.up()
    page.wait_for_timeout(300)
    frames = page.evaluate("window.__frames")
    worst = max(frames[1:])
    print(f"10,000-node graph: worst frame while panning {worst:.0f} ms over {len(frames)}")
    assert worst < 200, worst

    # A collapsed node opens on a click and shows its children.
    page.click("#g-fit")
    before = boxes.count()
    collapsed = page.locator("#graph g.gbox.collapsed").first
    node_id = collapsed.get_attribute("data-node-id")
    collapsed.locator("rect.gnode").click()
    expect(page.locator(f'#graph g.gbox[data-node-id="{node_id}"]')).to_have_attribute(
        "aria-expanded", "true"
    )
    assert boxes.count() > before
    assert_readable(page)


def test_duplicates_are_marked(
    page: Any, ui_stack: UiStack, mcts_job: tuple[str, list[str]]
) -> None:
    job_id, _ = mcts_job
    # The first depth-5 node's terminal children repeat one text (see bigmcts).
    parent = f"{job_id}-0.0.0.0.0.0"
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}/graph?node={parent}")
    page.wait_for_selector("#graph[data-ready=true]")
    expect(page.locator("#graph .gdup").first).to_have_attribute("data-dups", "4")


def test_tree_page_says_why_the_answer_won(
    page: Any, ui_stack: UiStack, mcts_job: tuple[str, list[str]]
) -> None:
    job_id, path = mcts_job
    why = ui_stack.api.get(f"/v1/jobs/{job_id}/selection").json()
    assert why["rule"] == "best_terminal_score"
    assert why["chosen"]["node_id"] == path[-1]
    assert why["runner_up"]["score"] == 0.97
    assert why["chosen_root_child"]["child_index"] == 3
    assert (why["most_visited"]["child_index"], why["most_visited"]["visits"]) == (0, 293)
    assert why["duplicate_groups"] > 0
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}/tree")
    box = page.locator("#why")
    expect(box).to_contain_text("best aggregated step score (min of the step scorer")
    expect(box).to_contain_text("root child #3 (233 visits, value 0.381)")
    expect(box).to_contain_text("#0 has the most visits (293, value 0.404)")
    expect(box.locator('tr[data-role="most-visited root child"]')).to_contain_text("293")
    expect(box.locator('tr[data-role="runner-up"]')).to_contain_text("0.970")
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}")
    expect(page.locator("#why")).to_contain_text("select=best ranks finished paths by score")
