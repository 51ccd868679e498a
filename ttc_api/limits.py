"""Request body size limit (413 problem+json), enforced before the body is parsed."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ttc_api.problems import problem_response


class BodySizeLimit:
    """``max_bytes`` for every body, but ``path_limits[path]`` for those paths (uploads)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, path_limits: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_max = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope.get("path", ""), self.default_max)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._reject(scope, receive, send, max_bytes)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._reject(scope, receive, send, max_bytes)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = problem_response(
            413, "Request body too large", f"the limit is {max_bytes} bytes"
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class RejectNulInURL:
    """A NUL character in the URL never reaches a route: Postgres text cannot hold one, so
    an id, cursor or filter carrying it would fail in the database (a 500).

    In the path it is a 404 (no id contains one); in the query, a 422 naming the parameter.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            response = None
            if "\x00" in scope.get("path", ""):
                response = problem_response(404, "Not found", "no resource has a NUL in its path")
            else:
                query = scope.get("query_string", b"").decode("latin-1")
                for name, value in parse_qsl(query, keep_blank_values=True):
                    if "\x00" in name or "\x00" in value:
                        response = problem_response(
                            422,
                            "Invalid request",
                            f"{name.replace(chr(0), '')}: must not contain a NUL character",
                            field=name.replace("\x00", ""),
                        )
                        break
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
