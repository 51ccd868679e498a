"""Long unbroken text (a tenant's prompt, a model's output) wraps inside its card: no
card and no page scrolls sideways because of it."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import UiStack

pytestmark = pytest.mark.integration

#: One "word" far wider than any screen, as a model's garbage or a pasted blob gives.
BLOB = "x" * 1500

OVERFLOWING = """() => {
  const wide = [];
  for (const el of document.querySelectorAll('.card, .card *')) {
    if (el.closest('svg, .graph, table')) continue;  // the graph pans; tables scroll
    if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0) {
      wide.push(`${el.tagName}.${el.className}: ${el.scrollWidth} > ${el.clientWidth}`);
    }
  }
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth + 1) wide.push(`page: ${doc.scrollWidth}`);
  return wide;
}"""


def test_long_unbroken_text_wraps_in_its_card(page: Any, ui_stack: UiStack) -> None:
    job_id = ui_stack.submit(
        strategy="self_consistency",
        prompt=f"{BLOB} How much is 6 x 7?",
        params={"n": 2, "stop": [BLOB[:200]]},
        reference="42",
    )
    ui_stack.finished(job_id)
    page.set_viewport_size({"width": 1000, "height": 800})
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}")
    # The blob is on the job page (its prompt, under Parameters), wrapped.
    expect(page.locator(".card", has_text=BLOB[:100]).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert page.evaluate(OVERFLOWING) == []
    # The tree page: the root's text is the prompt too.
    page.goto(f"{ui_stack.url}/ui/jobs/{job_id}/tree")
    expect(page.locator(".card").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert page.evaluate(OVERFLOWING) == []
