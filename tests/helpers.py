"""Shared test helpers: fresh Postgres databases, polling. Processes: ttc_cli.stack."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from ttc_cli.stack import fresh_postgres

__all__ = ["REDIS_BASE", "fresh_postgres", "serve_in_thread", "wait_until"]

REDIS_BASE = os.environ.get("TTC_TEST_REDIS", "redis://127.0.0.1:6379")


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(every)


@contextlib.contextmanager
def serve_in_thread(app: Any, timeout: float = 20.0) -> Iterator[str]:
    """Serve an ASGI app (lifespan included) on a free local port in a thread; yields its
    URL. For tests that want the real HTTP path without a child process."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout=timeout)
        if not server.started:
            raise RuntimeError("the app did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
