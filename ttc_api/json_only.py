"""415 for request bodies that are not JSON, before any route reads them.

Every ``/v1`` body is JSON. Without this check a form or plain-text body reaches the
route as bytes and fails validation with a 422 that blames the body's shape rather than
its media type.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ttc_api.problems import problem_response

_BODY_METHODS = {"POST", "PUT", "PATCH"}


def is_json_media_type(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class JSONBodiesOnly:
    """Answer 415 problem+json to a ``/v1`` request whose body is not declared JSON."""

    def __init__(self, app: ASGIApp, prefix: str = "/v1/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _BODY_METHODS
            and scope["path"].startswith(self.prefix)
        ):
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length", b"")
            has_body = b"transfer-encoding" in headers or (length not in (b"", b"0"))
            media = headers.get(b"content-type", b"").decode("latin-1")
            if has_body and not is_json_media_type(media):
                response = problem_response(
                    415,
                    "Unsupported media type",
                    f"send the body as application/json, not {media or 'no Content-Type'}",
                    field="Content-Type",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
