"""A finished search's progress is complete everywhere it is shown: a beam search that
ends before its bound (n x max_depth) reads 100% in ``ttc run``'s bar, on its job page
and in the jobs list (issue 15: it read 320/640, 50%)."""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import UiStack
from ttc_cli.main import main

pytestmark = pytest.mark.integration

BAR = re.compile(r"\[([#-]+)\] (\d+)/(\d+) nodes")
N, BEAM_WIDTH, MAX_DEPTH = 8, 2, 8


@pytest.fixture(scope="module")
def cli_beam(ui_stack: UiStack) -> dict[str, Any]:
    """A beam search submitted and followed by ``ttc run`` (auth on: the admin's key)."""
    args = [
        *("run", "--server", ui_stack.url, "--api-key", ui_stack.admin_key, "--gsm8k", "3"),
        *("--strategy", "beam_search", "--prm", "prm", "--n", str(N)),
        *("--param", f"beam_width={BEAM_WIDTH}", "--param", f"max_depth={MAX_DEPTH}"),
    ]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    assert code == 0, err.getvalue()[-3000:]
    job_id = re.search(r"job (\S+) accepted", err.getvalue()).group(1)  # type: ignore[union-attr]
    return {"job": ui_stack.job(job_id), "stdout": out.getvalue(), "stderr": err.getvalue()}


def test_the_cli_bar_ends_at_100_percent(cli_beam: dict[str, Any]) -> None:
    job = cli_beam["job"]
    assert job["status"] == "succeeded"
    nodes = job["progress"]["nodes"]
    assert 0 < nodes < N * MAX_DEPTH, "the test needs a search that ends before its bound"
    filled, done, total = BAR.findall(cli_beam["stderr"])[-1]
    assert (int(done), int(total)) == (nodes, nodes) and set(filled) == {"#"}
    assert "status: succeeded" in cli_beam["stdout"]


def test_the_job_page_and_the_list_show_100_percent(
    page: Any, ui_stack: UiStack, cli_beam: dict[str, Any]
) -> None:
    job = cli_beam["job"]
    nodes = f"{job['progress']['nodes']:,}"
    page.goto(f"{ui_stack.url}/ui/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#progress .budget-num")).to_have_text(f"{nodes} / {nodes} (100%)")
    page.goto(f"{ui_stack.url}/ui/jobs?strategy=beam_search")
    row = page.locator(f'tr[data-job-id="{job["id"]}"]')
    expect(row.locator(".progress-cell")).to_have_text(f" {nodes}/{nodes} (100%)")
