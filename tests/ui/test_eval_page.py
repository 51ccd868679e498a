"""An eval of 100 problems x 3 arms x 7 grid points on two worker processes: progress
is shown while it runs, its page shows the curves and the table, and its CSV holds one
row per (arm, grid point). All real: Playwright driving Chromium against the API server
process (auth on), two Celery workers, Postgres and the simulated endpoint."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import expect

from tests.eval_support import DOUBLING, finished, graded_rows, submit, upload
from tests.helpers import REDIS_BASE, fresh_postgres
from tests.ui.conftest import ARTIFACTS, _open_page, assert_readable
from ttc_api.csrf import SESSION_COOKIE
from ttc_cli.stack import Proc, run_stack
from ttc_core.service.auth import create_key
from ttc_core.service.ui_sessions import create_session
from ttc_core.store.db import Database
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer

pytestmark = pytest.mark.integration

REDIS_DB = 14
PROBLEMS = 100
ARMS = [
    {"strategy": "best_of_n", "name": "best_of_n (oracle)"},
    {"strategy": "self_consistency"},
    {
        "strategy": "best_of_n",
        "name": "best_of_n (reward model)",
        "verifier": {"kind": "reward_model", "endpoint": "sim-rm"},
    },
]


@dataclass
class EvalStack:
    url: str
    api: httpx.Client
    session_token: str


@pytest.fixture(scope="module")
def eval_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvalStack]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    logs = Path(tmp_path_factory.mktemp("eval-ui"))
    with (
        SimServer(SimConfig(base_latency_s=0.01, per_token_latency_s=0.0, slots=256)) as sim,
        fresh_postgres() as pg_url,
        run_stack(
            database_url=pg_url,
            broker_url=broker,
            log_dir=logs,
            sim_url=sim.url,
            endpoint_overrides={"max_n_per_request": 64},
            extra_env={"TTC_EXPAND_BATCH_SAMPLES": "64"},
            auth=True,
        ) as running,
    ):
        # The second worker: the eval's jobs spread over two worker processes.
        running.procs.append(
            Proc(["worker", "--concurrency", "2"], running.env, logs / "worker2.log")
        )
        with Database(pg_url).transaction() as session:
            row, key = create_key(session, "ops", admin=True, name="eval ui test")
            token = create_session(session, row.id, ttl_s=3600)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=running.api_url, headers=headers, timeout=60) as api:
            yield EvalStack(running.api_url, api, token)


@pytest.fixture
def eval_page(browser: Any, eval_stack: EvalStack, request: pytest.FixtureRequest) -> Iterator[Any]:
    with _open_page(browser, request) as watched:
        watched.page.context.add_cookies(
            [{"name": SESSION_COOKIE, "value": eval_stack.session_token, "url": eval_stack.url}]
        )
        yield watched.page


def test_eval_runs_with_progress_and_its_page_shows_curves_and_table(
    eval_stack: EvalStack, eval_page: Any
) -> None:
    api = eval_stack.api
    dataset = upload(api, graded_rows(PROBLEMS, seed=31))
    eval_id = submit(
        api,
        {"dataset": dataset, "endpoint": "sim", "arms": ARMS, "grid": {"n": DOUBLING}, "seed": 2},
    )
    page = eval_page
    # The plots load after the page (drawn by the server from the jobs so far).
    page.goto(f"{eval_stack.url}/ui/evals/{eval_id}", wait_until="domcontentloaded")
    expect(page.locator("#eval-progress-text")).to_contain_text(f"/{PROBLEMS} problems")
    # Progress moves while it runs (the page polls it; so does this test).
    seen: set[int] = set()
    ev = api.get(f"/v1/evals/{eval_id}", params={"curves": "false"}).json()
    while ev["status"] not in ("succeeded", "failed", "cancelled"):
        seen.add(ev["progress"]["jobs_done"])
        page.wait_for_timeout(300)
        ev = api.get(f"/v1/evals/{eval_id}", params={"curves": "false"}).json()
    # The oracle and self-consistency sample alike: one run per problem serves both.
    assert ev["progress"]["jobs"] == 2 * PROBLEMS
    assert any(0 < done < 2 * PROBLEMS for done in seen), sorted(seen)
    print(f"{PROBLEMS} problems x {len(ARMS)} arms x 7 points: {ev['progress']['elapsed_s']} s")
    final = finished(api, eval_id)
    assert final["status"] == "succeeded", final
    assert final["progress"]["problems_done"] == PROBLEMS

    # The page follows the eval to its end: status, every point in the table, the plots.
    expect(page.locator("#eval-status")).to_contain_text("succeeded", timeout=20_000)
    rows = page.locator("#points-body tr")
    expect(rows).to_have_count(len(ARMS) * len(DOUBLING))
    expect(
        page.locator('#points-body tr[data-arm="self_consistency"][data-value="64"]')
    ).to_contain_text("100")
    for plot in ("plot-n", "plot-tokens", "plot-difficulty"):
        page.wait_for_function(
            f"() => {{ const i = document.getElementById('{plot}'); "
            "return i.complete && i.naturalWidth > 0; }"
        )
    src = page.get_attribute("#plot-n", "src")
    assert src is not None and re.search(r"/plots/accuracy_vs_n\.svg\?rev=\d+$", src)
    image = api.get(src)
    assert image.headers["content-type"] == "image/svg+xml"
    svg = image.text
    for arm in ("best_of_n (oracle)", "self_consistency", "best_of_n (reward model)"):
        assert arm in svg  # the legend names every arm
    expect(page.locator("#cmp-body tr").first).to_be_visible()
    assert_readable(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "eval_page_full.png"), full_page=True)
    # Each job links to its tree.
    first_job = page.locator("#eval-jobs-body tr a").first
    href = first_job.get_attribute("href")
    assert href is not None and re.search(r"/ui/jobs/[0-9a-f-]{36}/tree$", href)

    # The export: one CSV row per (arm, grid point), parsed by the standard library.
    export = api.get(f"/v1/evals/{eval_id}/results", params={"format": "csv"})
    assert export.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(export.text)))
    keys = [(r["arm"], int(r["value"])) for r in table]
    assert len(keys) == len(set(keys)) == len(ARMS) * len(DOUBLING)
    assert set(keys) == {(a.get("name", a["strategy"]), n) for a in ARMS for n in DOUBLING}
    for r in table:
        assert 0.0 <= float(r["ci_low"]) <= float(r["accuracy"]) <= float(r["ci_high"]) <= 1.0
        assert int(r["problems"]) == PROBLEMS
    curve = {int(r["value"]): float(r["accuracy"]) for r in table if r["arm"] == "self_consistency"}
    assert curve[64] > curve[1]

    # The evals list shows it.
    page.goto(f"{eval_stack.url}/ui/evals")
    expect(page.locator(f'tr[data-eval-id="{eval_id}"]')).to_contain_text("succeeded")
    first = page.locator(f'tr[data-eval-id="{eval_id}"] a')
    first.click()
    expect(page).to_have_url(re.compile(rf"/ui/evals/{eval_id}$"))
    page.locator("#eval-jobs-body tr a").first.click()
    expect(page).to_have_url(re.compile(r"/ui/jobs/[0-9a-f-]{36}/tree$"))
