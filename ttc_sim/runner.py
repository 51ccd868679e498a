"""Running the simulated server: in a background thread (:class:`SimServer`, for tests, demos
and benchmarks) or in the foreground (:func:`serve`, for ``ttc sim``), plus the argparse
helpers that expose every :class:`SimConfig` knob on a command line.

Example::

    with SimServer(SimConfig(slots=4)) as sim:
        httpx.post(f"{sim.base_url}/completions", json={"model": "sim-gsm8k", "prompt": q})
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
import types
from typing import Any

import uvicorn

from .config import SimConfig
from .server import SimApp, create_app
from .tasks import ProblemIndex


def _config(config: SimConfig | None, overrides: dict[str, Any]) -> SimConfig:
    cfg = config or SimConfig()
    if overrides:
        cfg = SimConfig.model_validate({**cfg.model_dump(), **overrides})
    return cfg


class SimServer:
    """The simulated server on 127.0.0.1 in a background thread.

    ``port=0`` picks a free port. Use as a context manager, or call :meth:`start` and
    :meth:`stop`. Keyword overrides are :class:`SimConfig` fields:
    ``SimServer(slots=4, base_latency_s=0.01)``.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        index: ProblemIndex | None = None,
        loop: str = "auto",
        **overrides: Any,
    ) -> None:
        self.config = _config(config, overrides)
        self.app: SimApp = create_app(self.config, index=index)
        self.host = host
        self.port = port
        self._loop = loop
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``"""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``url + "/v1"``."""
        return self.url + "/v1"

    @property
    def metrics(self) -> dict[str, Any]:
        """A snapshot of the server's metrics (read directly, no HTTP)."""
        return self.app.metrics.snapshot()

    def reset_metrics(self) -> None:
        """Zero the server's metrics (like ``POST /metrics/reset``)."""
        self.app.reset_metrics()

    def start(self, timeout: float = 10.0) -> SimServer:
        if self._thread is not None:
            raise RuntimeError("SimServer already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        cfg = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            loop=self._loop,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=30,
            backlog=4096,
        )
        self._server = uvicorn.Server(cfg)
        self._thread = threading.Thread(target=self._run, args=(sock,), name="ttc-sim", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ttc_sim server did not start: {self._error!r}")
            time.sleep(0.005)
        return self

    def _run(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            self._server.run(sockets=[sock])
        except BaseException as exc:  # reported by start(); never escape the thread
            self._error = exc
        finally:
            sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for its thread (hangs in progress end at once)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.app.begin_shutdown()
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._thread = None
        self._server = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    config: SimConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8100,
    *,
    log_level: str = "info",
) -> None:
    """Run the simulated server in the foreground until interrupted."""
    app = create_app(config or SimConfig())
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, backlog=4096)


# ------------------------------------------------------------------------------ argparse


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "") else float(text)


def add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--option`` per :class:`SimConfig` field (``--base-latency-s``, ``--slots``,
    ``--reject-n/--no-reject-n``, ...). Defaults are ``None``, meaning "the SimConfig
    default"; read them back with :func:`config_from_args`."""
    group = parser.add_argument_group("simulated model")
    for name, info in SimConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        helptext = f"{name} (default: {info.default})"
        if info.annotation is bool:
            group.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=helptext
            )
        elif info.annotation is int:
            group.add_argument(flag, dest=name, type=int, default=None, help=helptext)
        elif info.annotation is float:
            group.add_argument(flag, dest=name, type=float, default=None, help=helptext)
        else:
            group.add_argument(flag, dest=name, type=_optional_float, default=None, help=helptext)


def config_from_args(ns: argparse.Namespace, base: SimConfig | None = None) -> SimConfig:
    """The :class:`SimConfig` the options added by :func:`add_sim_arguments` describe."""
    values = {
        name: getattr(ns, name)
        for name in SimConfig.model_fields
        if getattr(ns, name, None) is not None
    }
    return _config(base, values)


def main(argv: list[str] | None = None) -> None:
    """``python -m ttc_sim --port 8100 [--knobs]``"""
    parser = argparse.ArgumentParser(
        prog="python -m ttc_sim",
        description="Run the simulated OpenAI-compatible inference and reward-model server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--log-level", default="info")
    add_sim_arguments(parser)
    ns = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        serve(config_from_args(ns), ns.host, ns.port, log_level=ns.log_level)
