"""llama.cpp's own ``llama-server``, built from source and serving a tiny GGUF, for tests.

``scripts/conformance/build_llamacpp.sh`` builds the server once per machine (the
llama-cpp-python sdist vendors llama.cpp) and ``scripts/conformance/make_tiny_gguf.sh``
converts the suite's random-weight generator with llama.cpp's own converter; both cache
under ``$TTC_CONFORMANCE_CACHE``. Building takes minutes, so the fixtures only run when
``TTC_CONFORMANCE`` is set (``make conformance``) and skip otherwise; set
``TTC_LLAMACPP_SERVER`` to use a binary built elsewhere.

The server starts as ``llama-server -m tiny.gguf --host 127.0.0.1 --port P -c 4096
--parallel 4 --metrics``; it is up within seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "conformance"
#: Slots of the test server: ``n`` above this is refused (400 naming the limit).
PARALLEL = 4
CONTEXT = 4096
START_TIMEOUT_S = 120.0

_METRIC = re.compile(r"^(llamacpp:[a-z_]+)(?:\{[^}]*\})?\s+([-+0-9.eE]+)$")


def enabled() -> bool:
    return bool(os.environ.get("TTC_CONFORMANCE") or os.environ.get("TTC_LLAMACPP_SERVER"))


def _script(name: str, *args: str) -> Path:
    """Run a conformance script and return the path it prints last."""
    done = subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def server_binary() -> Path:
    """The ``llama-server`` binary: ``$TTC_LLAMACPP_SERVER`` or the cached build."""
    given = os.environ.get("TTC_LLAMACPP_SERVER")
    return Path(given) if given else _script("build_llamacpp.sh")


def tiny_gguf(template: str) -> Path:
    """The tiny generator as GGUF with ``template``'s chat template (qwen25, qwen3)."""
    return _script("make_tiny_gguf.sh", template)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LlamaServer:
    """A running ``llama-server`` (stopped by :meth:`stop`)."""

    process: subprocess.Popen[bytes]
    port: int
    model_path: Path
    log_path: Path
    parallel: int = PARALLEL
    _stopped: bool = field(default=False, repr=False)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an endpoint's ``base_url`` is set to (the OpenAI routes)."""
        return self.root + "/v1"

    @property
    def model(self) -> str:
        return self.model_path.name

    def metrics(self) -> dict[str, float]:
        """``/metrics`` counters and gauges, by name (``llamacpp:tokens_predicted_total``)."""
        text = httpx.get(self.root + "/metrics", timeout=10).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if m := _METRIC.match(line.strip()):
                out[m.group(1)] = float(m.group(2))
        return out

    def log_tail(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_server(
    model: Path, *, parallel: int = PARALLEL, extra: tuple[str, ...] = ()
) -> LlamaServer:
    """Start ``llama-server`` on a free port and wait until ``/health`` answers 200."""
    binary = server_binary()
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    args = [
        str(binary),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-c",
        str(CONTEXT),
        "--parallel",
        str(parallel),
        "--metrics",
        "--threads",
        "2",
        *extra,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    server = LlamaServer(process, port, model, log_path, parallel)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"llama-server exited ({process.returncode}):\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.root + "/health", timeout=2).status_code == 200:
                return server
        if time.monotonic() > deadline:
            server.stop()
            tail = server.log_tail()
            raise RuntimeError(f"llama-server not healthy in {START_TIMEOUT_S}s:\n{tail}")
        time.sleep(0.2)


@contextlib.contextmanager
def running_server(template: str, **kw: object) -> Iterator[LlamaServer]:
    if not enabled():
        pytest.skip("llama.cpp conformance runs with TTC_CONFORMANCE=1 (make conformance)")
    server = start_server(tiny_gguf(template), **kw)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def llamacpp_server() -> Iterator[LlamaServer]:
    """llama-server with the Qwen2.5-style template, ``--parallel 4``."""
    with running_server("qwen25") as server:
        yield server


@pytest.fixture(scope="module")
def llamacpp_thinking_server() -> Iterator[LlamaServer]:
    """llama-server with the Qwen3-style thinking template."""
    with running_server("qwen3") as server:
        yield server
