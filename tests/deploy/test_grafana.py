"""The Grafana dashboard parses and every query names metrics that ttc exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

import ttc_core.observability.metrics  # noqa: F401 - registers ttc's metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "ttc.json"

#: Collected at scrape time by the API (ttc_core/observability/collectors.py).
SCRAPE_TIME = {
    "ttc_celery_queue_length",
    "ttc_endpoint_slots_in_use",
    "ttc_endpoint_concurrency_limit",
    "ttc_broker_up",
    "ttc_jobs",
}


def exported_names() -> set[str]:
    names = set(SCRAPE_TIME)
    for metric in REGISTRY.collect():
        if not metric.name.startswith("ttc_"):
            continue
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
        }.get(metric.type, [""])
        names.update(metric.name + s for s in suffixes)
    return names


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["definition"])
    return found


def test_dashboard_queries_name_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = queries(dashboard)
    assert len(exprs) > 25
    exported = exported_names()
    used = set()
    for expr in exprs:
        assert expr.count("(") == expr.count(")"), expr
        names = set(re.findall(r"\bttc_[a-z0-9_]+", expr))
        assert names, expr
        assert names <= exported, (expr, names - exported)
        used |= names
    # The list, each on the dashboard.
    for must in (
        "ttc_jobs",
        "ttc_nodes_total",
        "ttc_inference_samples_total",
        "ttc_tokens_total",
        "ttc_cost_total",
        "ttc_inference_request_duration_seconds_bucket",
        "ttc_inference_in_flight_requests",
        "ttc_endpoint_concurrency_limit",
        "ttc_inference_retries_total",
        "ttc_circuit_open_until_timestamp_seconds",
        "ttc_celery_queue_length",
        "ttc_driver_step_duration_seconds_bucket",
        "ttc_expansion_duration_seconds_bucket",
        "ttc_webhook_attempts_total",
        "ttc_sse_streams_open",
    ):
        assert must in used, must


def test_panel_ids_are_unique() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
