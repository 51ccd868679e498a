"""Every documented query parameter filters as documented, one by one, on SQLite and on
Postgres; a query parameter a route does not take is a 422 naming it; jobs carry their
prompt, reference, batch and timezone-aware timestamps; actions answer the same shape on
both databases. The app runs in-process (embedded executor) against the simulator."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.helpers import fresh_postgres, serve_in_thread
from ttc_api.app import create_app
from ttc_cli.migrate import upgrade
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Job
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems

PROBLEM = gsm8k_problems()[0]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(SimConfig(base_latency_s=0.002, per_token_latency_s=0.0, slots=64)) as s:
        yield s


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, sim: SimServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, str]]:
    def serve(url: str) -> Iterator[tuple[httpx.Client, str]]:
        settings = Settings(
            database_url=url,
            executor="local",
            auth_enabled=False,
            allow_insecure_no_auth=True,
            endpoints={
                "sim": EndpointConfig(base_url=sim.base_url, model="sim-gsm8k"),
                "sim-prm": EndpointConfig(base_url=sim.url, model="sim-prm", kind="reward"),
            },
        )
        with serve_in_thread(create_app(settings)) as base, httpx.Client(base_url=base) as client:
            yield client, url

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'ttc.db'}"
        upgrade(url)
        yield from serve(url)
    else:
        with fresh_postgres() as url:
            yield from serve(url)


def _finished(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def _submit(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    body = {
        "strategy": "self_consistency",
        "endpoint": "sim",
        "prompt": PROBLEM.question,
        "reference": PROBLEM.answer,
        "params": {"n": 4, "max_tokens": 256},
        **overrides,
    }
    resp = client.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return _finished(client, resp.json()["id"])


@pytest.fixture(scope="module")
def jobs(api: tuple[httpx.Client, str]) -> dict[str, dict[str, Any]]:
    """A finished self-consistency job, a finished beam search, and the first one's
    batch id set directly (problem batches are tested elsewhere)."""
    client, url = api
    vote = _submit(client)
    beam = _submit(
        client,
        strategy="beam_search",
        params={"n": 4, "beam_width": 2, "max_depth": 4, "max_tokens": 96},
        prm={"kind": "prm", "endpoint": "sim-prm", "protocol": "json"},
    )
    with Database(url).transaction() as session:
        session.execute(update(Job).where(Job.id == vote["id"]).values(batch_id="batch-1"))
    return {"vote": vote, "beam": beam}


def _problem(resp: Any, status: int, field: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["field"] == field, resp.json()


def test_unknown_query_parameters_are_refused(
    api: tuple[httpx.Client, str], jobs: dict[str, Any]
) -> None:
    client, _ = api
    job_id = jobs["vote"]["id"]
    _problem(client.get("/v1/jobs", params={"batchid": "x"}), 422, "batchid")
    _problem(client.get(f"/v1/jobs/{job_id}/nodes", params={"terminal": "1"}), 422, "terminal")
    _problem(client.get(f"/v1/jobs/{job_id}", params={"verbose": "1"}), 422, "verbose")
    _problem(client.get(f"/v1/jobs/{job_id}/events", params={"since": "1"}), 422, "since")
    assert client.get("/v1/jobs", params={"limit": 1}).status_code == 200


def test_job_filters(api: tuple[httpx.Client, str], jobs: dict[str, Any]) -> None:
    client, _ = api
    vote, beam = jobs["vote"]["id"], jobs["beam"]["id"]

    def ids(**params: Any) -> list[str]:
        resp = client.get("/v1/jobs", params=params)
        assert resp.status_code == 200, resp.text
        return [j["id"] for j in resp.json()["data"]]

    assert ids(batch_id="batch-1") == [vote]
    assert ids(batch_id="nope") == []
    assert ids(strategy="beam_search") == [beam]
    assert ids(strategy="self_consistency") == [vote]
    assert set(ids(status="succeeded")) == {vote, beam}
    assert ids(status="failed") == []
    _problem(client.get("/v1/jobs", params={"status": "done"}), 422, "status")
    assert ids(limit=1) == [beam]  # newest first
    page = client.get("/v1/jobs", params={"limit": 1}).json()
    assert ids(limit=1, cursor=page["next_cursor"]) == [vote]


def test_node_filters(api: tuple[httpx.Client, str], jobs: dict[str, Any]) -> None:
    client, _ = api
    job = jobs["beam"]
    path = f"/v1/jobs/{job['id']}/nodes"
    every = client.get(path, params={"limit": 1000}).json()["data"]
    by_id = {n["id"]: n for n in every}

    def nodes(**params: Any) -> list[dict[str, Any]]:
        resp = client.get(path, params={"limit": 1000, **params})
        assert resp.status_code == 200, resp.text
        found: list[dict[str, Any]] = resp.json()["data"]
        return found

    terminal = nodes(is_terminal="true")
    assert terminal and all(n["is_terminal"] for n in terminal)
    assert {n["id"] for n in terminal} == {n["id"] for n in every if n["is_terminal"]}
    assert all(not n["is_terminal"] for n in nodes(is_terminal="false"))
    # "terminal" is not a status: asking for it is an error, not a silent "done".
    _problem(client.get(path, params={"status": "terminal"}), 422, "status")
    done = nodes(status="done")
    assert done and all(n["status"] == "done" for n in done)
    root = job["root_node_id"]
    kids = nodes(parent_id=root)
    assert kids and all(n["parent_id"] == root for n in kids)
    assert [n["child_index"] for n in kids] == sorted(n["child_index"] for n in kids)
    first = kids[0]["id"]
    under = nodes(under=first)
    assert under[0]["id"] == first
    for n in under[1:]:
        cursor = by_id[n["id"]]
        while cursor["parent_id"] != first:
            cursor = by_id[cursor["parent_id"]]
    scored = [n for n in every if n["score"] is not None]
    middle = sorted(n["score"] for n in scored)[len(scored) // 2]
    assert all(n["score"] >= middle for n in nodes(min_score=middle))
    assert all(n["score"] <= middle for n in nodes(max_score=middle))
    word = next(n for n in every if n["parent_id"] is not None)["text"].split()[0]
    assert all(word.lower() in n["text"].lower() for n in nodes(q=word))
    page = client.get(path, params={"limit": 2}).json()
    rest = client.get(path, params={"limit": 1000, "cursor": page["next_cursor"]}).json()
    assert [n["id"] for n in page["data"]] + [n["id"] for n in rest["data"]] == [
        n["id"] for n in every
    ]


def test_jobs_carry_what_was_submitted(api: tuple[httpx.Client, str], jobs: dict[str, Any]) -> None:
    client, _ = api
    job = client.get(f"/v1/jobs/{jobs['vote']['id']}").json()
    assert job["prompt"] == PROBLEM.question
    assert job["reference"] == PROBLEM.answer
    assert job["batch_id"] == "batch-1"
    for field in ("created_at", "started_at", "finished_at"):
        moment = dt.datetime.fromisoformat(job[field])
        assert moment.utcoffset() == dt.timedelta(0), (field, job[field])
    node = client.get(f"/v1/jobs/{job['id']}/nodes/{job['root_node_id']}").json()
    assert dt.datetime.fromisoformat(node["created_at"]).tzinfo is not None
    # A finished search is all of its planned work (its progress bar ends at 100%).
    beam = client.get(f"/v1/jobs/{jobs['beam']['id']}").json()
    assert beam["progress"]["planned_samples"] == beam["progress"]["nodes"]


def test_prune_counts_on_every_database(
    api: tuple[httpx.Client, str], jobs: dict[str, Any]
) -> None:
    client, _ = api
    job = jobs["beam"]
    path = f"/v1/jobs/{job['id']}/nodes"
    child = client.get(path, params={"parent_id": job["root_node_id"]}).json()["data"][0]
    below = client.get(path, params={"under": child["id"], "limit": 1000}).json()["data"]
    expected = sum(1 for n in below if n["status"] in ("done", "pending"))
    resp = client.post(f"{path}/{child['id']}/prune")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["pruned"] == expected > 0
    assert body["job"]["id"] == job["id"]
    again = client.post(f"{path}/{child['id']}/prune").json()
    assert again["pruned"] == 0
