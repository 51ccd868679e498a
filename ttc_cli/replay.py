"""``ttc replay``: replay a finished job (or a subtree) on a server and print where the
new tree diverges from the old one."""

from __future__ import annotations

import argparse
import os
import sys

from ttc_api.schemas import ReplayPublic
from ttc_cli.render import progress_line, write_progress
from ttc_cli.runjob import UsageError, check_server_url

#: Characters of a divergent node's text shown per line.
SHOWN = 70


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", help="the finished job to replay")
    parser.add_argument(
        "--server",
        default=os.environ.get("TTC_SERVER", "http://127.0.0.1:8000"),
        help="the ttc API's URL, without /v1 (default: $TTC_SERVER or http://127.0.0.1:8000)",
    )
    parser.add_argument("--api-key", default=os.environ.get("TTC_API_KEY"))
    parser.add_argument("--node", default=None, help="replay only the subtree under this node")
    parser.add_argument("--endpoint", default=None, help="another endpoint (default: the job's)")
    parser.add_argument("--model", default=None, help="another model on that endpoint")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")


def _clip(text: str | None) -> str:
    if text is None:
        return "-"
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= SHOWN else flat[: SHOWN - 3] + "...")


def render_report(report: ReplayPublic) -> str:
    """The comparison as lines: the counts, then each divergence (where, why, old/new)."""
    lines = [
        f"replay {report.job_id} of {report.source_job_id} on {report.endpoint} "
        f"({report.model}): {report.status}",
        f"nodes reproduced: {report.nodes_reproduced}/{report.nodes_compared}; "
        f"paths reproduced: {report.paths_reproduced}/{report.paths}",
    ]
    if not report.divergences:
        lines.append("no divergence: every node came out the same")
    for d in report.divergences:
        where = d.address or "(root)"
        lines.append(
            f"  diverges at {where} (depth {d.depth}, {d.reason}, first on {d.paths} "
            f"path{'s' if d.paths != 1 else ''}): node {d.old_node_id}"
        )
        lines.append(f"    old {_clip(d.old_text)}")
        lines.append(f"    new {_clip(d.new_text)}")
    return "\n".join(lines)


def replay_job(ns: argparse.Namespace) -> int:
    import httpx

    from ttc_api.client import APIError, TTCClient

    try:
        server = check_server_url(ns.server)
    except UsageError as exc:
        print(f"ttc replay: {exc}", file=sys.stderr)
        return 2
    try:
        with TTCClient(server, api_key=ns.api_key) as client:
            try:
                accepted = client.replay_job(
                    ns.job_id, node_id=ns.node, endpoint=ns.endpoint, model=ns.model
                )
            except APIError as exc:
                print(f"refused: {exc}", file=sys.stderr)
                return 2
            print(f"replay job {accepted.id} accepted", file=sys.stderr)
            job = client.wait(
                accepted.id,
                on_progress=lambda j: write_progress(
                    progress_line(
                        j.status,
                        j.progress.nodes,
                        j.progress.planned_samples,
                        j.usage.completion_tokens,
                    )
                ),
            )
            write_progress("\n")
            report = client.get_replay(job.id)
    except httpx.TransportError as exc:
        print(f"ttc replay: cannot reach the ttc API at {ns.server} ({exc})", file=sys.stderr)
        return 2
    print(report.model_dump_json(indent=2) if ns.json else render_report(report))
    return 0 if job.status == "succeeded" else 1
