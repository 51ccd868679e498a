"""The total a job's progress counts against (``ttc_core.service.progress.planned_nodes``): complete
once the job succeeded, the strategy's bound in nodes while it runs (thought nodes and
``budget.max_nodes`` included), never below what was made."""

from __future__ import annotations

from typing import Any

import pytest

from ttc_core.service.progress import planned_nodes
from ttc_core.store.models import Job, JobStatus


def _job(strategy: str, params: dict[str, Any], **fields: Any) -> Job:
    values: dict[str, Any] = {"status": JobStatus.running, "node_count": 0, "budget": {}}
    values.update(fields)
    return Job(id="j", strategy=strategy, endpoint="sim", params=params, **values)


def test_a_succeeded_search_is_complete_below_its_bound() -> None:
    beam = {"n": 16, "beam_width": 4, "max_depth": 40}
    assert planned_nodes(_job("beam_search", beam, node_count=320)) == 640  # running
    done = _job("beam_search", beam, node_count=320, status=JobStatus.succeeded)
    assert planned_nodes(done) == 320  # the 320/640 reads 100%


@pytest.mark.parametrize("status", [JobStatus.failed, JobStatus.cancelled, JobStatus.paused])
def test_a_stopped_job_keeps_its_bound(status: JobStatus) -> None:
    assert planned_nodes(_job("best_of_n", {"n": 64}, node_count=10, status=status)) == 64


def test_the_bound_counts_nodes() -> None:
    assert planned_nodes(_job("sample", {"n": 5})) == 5  # not 1: sample draws n
    assert planned_nodes(_job("think", {})) == 2  # a thought, then its answer
    thinking = {"effort": "high"}
    assert planned_nodes(_job("best_of_n", {"n": 8}, thinking=thinking)) == 16
    assert planned_nodes(_job("best_of_n", {"n": 64}, budget={"max_nodes": 20})) == 20
    # Never below what is there (a re-expansion by an operator adds nodes).
    assert planned_nodes(_job("best_of_n", {"n": 4}, node_count=6)) == 6


def test_params_that_no_longer_parse_plan_nothing_unless_finished() -> None:
    assert planned_nodes(_job("best_of_n", {"n": "many"})) is None
    done = _job("best_of_n", {"n": "many"}, node_count=3, status=JobStatus.succeeded)
    assert planned_nodes(done) == 3
