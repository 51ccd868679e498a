"""Minimal ASGI plumbing for the simulated server: one :class:`Exchange` per HTTP request
(body, JSON and streamed responses, errors with OpenAI-style bodies, connection resets).

The server is a plain ASGI application rather than a Starlette one: it keeps the per-request
overhead low (the simulator must answer a thousand requests a second on two cores) and it can
reach uvicorn's transport to reset a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 32 * 1024 * 1024

_ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class HTTPError(Exception):
    """An error answered with ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | int | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or []

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": _ERROR_TYPES.get(self.status, "server_error"),
                "param": self.param,
                "code": self.code if self.code is not None else self.status,
            }
        }


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


class Exchange:
    """One request and its response."""

    __slots__ = ("path", "query", "receive", "scope", "send", "status")

    def __init__(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.path = path
        #: Status sent; 0 while none is (and after a reset).
        self.status = 0
        self.query = parse_qs(scope.get("query_string", b"").decode("latin-1"))

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    async def body(self) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise HTTPError(413, "request body too large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def json_body(self) -> dict[str, Any]:
        raw = await self.body()
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, "request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HTTPError(400, "request body must be a JSON object")
        return data

    async def respond(
        self,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.status = status
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    *(headers or []),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body})

    async def json(self, status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None):
        await self.respond(status, dumps(obj), headers=headers)

    async def error(self, exc: HTTPError) -> None:
        await self.json(exc.status, exc.body(), headers=exc.headers)

    async def start_stream(self, content_type: bytes = b"text/event-stream") -> None:
        self.status = 200
        await self.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type), (b"cache-control", b"no-cache")],
            }
        )

    async def stream(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end_stream(self, data: bytes = b"") -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": False})

    async def reset(self) -> None:
        """Drop the connection without a response.

        Under uvicorn, ``send`` is a bound method of the request cycle, whose ``transport`` is
        the connection: SO_LINGER 0 then ``abort()`` makes the kernel send a TCP RST, and the
        cycle is marked disconnected before the app returns, so uvicorn neither answers nor
        logs. Under any other server (or httpx's ASGITransport) this raises
        ``ConnectionResetError`` out of the application instead.
        """
        owner = getattr(self.send, "__self__", None)
        transport = getattr(owner, "transport", None)
        if transport is None or not hasattr(transport, "abort"):
            raise ConnectionResetError("simulated connection reset")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError, TypeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        for _ in range(20):
            if getattr(owner, "disconnected", True):
                break
            await asyncio.sleep(0)
