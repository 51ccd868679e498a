"""422 for a JSON body holding what cannot be stored, before any route parses it.

One check for every route and every field (prompts, stop strings, messages, verifier
fields, webhook URLs, metadata, budgets...): see :mod:`ttc_api.storable`. The body is read
here (inside the size limit, so at most ``TTC_MAX_BODY_BYTES``) and handed on unchanged.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ttc_api.json_only import is_json_media_type
from ttc_api.problems import problem_response
from ttc_api.storable import parse_storable

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class StorableJSONBodies:
    """Answer 422 problem+json naming the field of a JSON body that cannot be stored."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if not is_json_media_type(headers.get(b"content-type", b"").decode("latin-1")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        found = None
        if body.strip():
            try:
                _, found = parse_storable(body)
            except (ValueError, RecursionError):
                found = None  # not JSON: the route's own parsing answers that
        if found is not None:
            detail = f"{found.field}: {found.reason}" if found.field else found.reason
            response = problem_response(
                422,
                "Invalid request",
                detail,
                field=found.field or None,
                errors=[{"field": found.field, "message": found.reason}],
            )
            await response(scope, receive, send)
            return
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        await self.app(scope, _replay(replay, receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` first, then defers to the real one (for
    the disconnect a streaming response waits on)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
