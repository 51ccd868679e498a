"""An upstream that echoes the request (headers included) in its error body: nothing a
tenant can read (node errors, job error, events) holds the endpoint's key."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.engine.conftest import ContextFactory
from ttc_cli.migrate import upgrade
from ttc_core.executor import run_job
from ttc_core.inference.redact import REDACTED, upstream_summary
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.models import Job, JobEvent, Node

KEY = "sk-live-Zq8ECHOED0key0value0123456789"
ODD_KEY = "opaque-token-without-a-known-shape-77"


class EchoUpstream(BaseHTTPRequestHandler):
    """Fails every request, echoing its headers and body back (as some proxies do)."""

    status = 500

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        echoed = {
            "error": {
                "message": "upstream failed",
                "request_headers": dict(self.headers),
                "request_body": body.decode("utf-8", "replace")[:200],
            }
        }
        raw = json.dumps(echoed).encode()
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[500, 400])
def upstream(request: pytest.FixtureRequest) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoUpstream)
    server.status = request.param  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("key", [KEY, ODD_KEY])
def test_echoed_key_never_reaches_tenant_visible_text(
    upstream: str,
    key: str,
    tmp_path: Path,
    make_context: ContextFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TTC_TEST_ECHO_KEY", key)
    url = f"sqlite:///{tmp_path}/ttc.db"
    upgrade(url)
    settings = Settings(
        database_url=url,
        endpoints={
            "echo": EndpointConfig(
                base_url=upstream, model="m", api_key_env="TTC_TEST_ECHO_KEY", max_retries=0
            )
        },
    )
    ctx = make_context(settings)
    spec = {
        "strategy": "best_of_n",
        "endpoint": "echo",
        "prompt": "2+2?",
        "params": {"n": 2},
        "reference": "4",
    }
    with ctx.db.transaction() as session:
        job_id = create_job(session, JobSpec.model_validate(spec), settings, tenant="t").id

    async def go() -> None:
        try:
            await run_job(ctx, job_id)
        finally:
            await ctx.aclose()

    asyncio.run(go())
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        nodes = session.scalars(select(Node).where(Node.job_id == job_id)).all()
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
        visible = json.dumps(
            {
                "error": job.error,
                "result": job.result,
                "nodes": [n.meta for n in nodes],
                "events": [e.data for e in events],
            },
            default=str,
        )
    assert "upstream failed" in visible or "HTTP" in visible  # the failure is reported...
    assert key not in visible  # ...without the key
    assert key[:12] not in visible


def test_summary_redacts_headers_bearer_and_key_shapes() -> None:
    body = (
        'Authorization: Bearer abc.def-ghi\n{"x-api-key": "k-1234567", "cookie": "s=1"} '
        "token sk-abcdefghijklmnop ttc_ABCDEFGH12345678 " + "y" * 1000
    )
    text = upstream_summary(body, ["k-1234567"], limit=300)
    assert len(text) <= 300
    for secret in ("abc.def-ghi", "k-1234567", "s=1", "sk-abcdefghijklmnop", "ttc_ABCDEFGH"):
        assert secret not in text
    assert REDACTED in text and "\n" not in text
