"""A tiny OpenAI-compatible "model" whose every sample is one fixed program (for code
verifier tests through the real stack: the simulator writes prose, not programs)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _handler(program: str) -> type[BaseHTTPRequestHandler]:
    content = "```python\n" + program + "```"

    class Coder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
                for i in range(int(body.get("n") or 1))
            ]
            usage = {"prompt_tokens": 5, "completion_tokens": 50, "total_tokens": 55}
            raw = json.dumps(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "model": "coder",
                    "choices": choices,
                    "usage": usage,
                }
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    return Coder


@contextlib.contextmanager
def serve_program(program: str) -> Iterator[str]:
    """The base URL (``.../v1``) of a server answering every chat completion with
    ``program`` in a fenced block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(program))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
