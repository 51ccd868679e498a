"""Errors in OpenAI's shape on the OpenAI-compatible routes.

The official SDKs pick their exception class from the status alone (400
``BadRequestError``, 401 ``AuthenticationError``, 403 ``PermissionDeniedError``, 404
``NotFoundError``, 409 ``ConflictError``, 422 ``UnprocessableEntityError``, 429
``RateLimitError``, 5xx ``InternalServerError``) and read ``message``, ``type``, ``param``
and ``code`` from the body::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "ttc.params.n",
               "code": "limit_exceeded"}}

The rest of ttc answers RFC 9457 problem+json. Rather than teach every handler two
dialects, :class:`OpenAIErrors` rewrites a problem+json answer on an OpenAI path into this
shape (its ``field`` becomes ``param``, headers such as ``Retry-After`` stay), so a bad key,
a tenant's rate limit or a body over the size limit reads the same on every route. A 422
becomes a 400: OpenAI answers invalid parameters with 400, and clients catch
``BadRequestError`` for them. Errors only these routes raise (an unknown model) are
:class:`OpenAIError`, answered by :func:`openai_error_response`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ttc_api.problems import PROBLEM_MEDIA_TYPE

#: Paths of OpenAI's API: errors there are in OpenAI's shape, whether a ttc route answers
#: them (models, chat, completions, responses) or none does (batches, files...: a 404).
OPENAI_PREFIXES = (
    "/v1/models",
    "/v1/chat/",
    "/v1/completions",
    "/v1/responses",
    "/v1/batches",
    "/v1/files",
    "/v1/uploads",
    "/v1/embeddings",
    "/v1/moderations",
    "/v1/images",
    "/v1/audio",
    "/v1/fine_tuning",
    "/v1/assistants",
    "/v1/threads",
    "/v1/vector_stores",
    "/v1/realtime",
    "/v1/conversations",
)

#: OpenAI's error ``type`` and a default ``code`` per status.
_KIND: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error body."""

    error: OpenAIErrorDetail


_DOCS = {
    400: "Invalid request; `param` names the offending parameter (e.g. `ttc.params.n`)",
    401: "No API key, or an unknown or revoked one",
    404: "Unknown model (`model_not_found`) or no such response",
    409: "The job was cancelled",
    413: "Request body too large",
    415: "Request body is not JSON",
    429: "Over the tenant's rate limit or concurrent-job quota; retry after `Retry-After`",
    500: "The job failed (`job_failed`; never worth retrying as is)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these statuses, with OpenAI's error body."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": OpenAIErrorBody, "description": _DOCS[code]}
        if code == 429:
            entry["headers"] = {
                "Retry-After": {
                    "description": "seconds to wait before retrying",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        out[code] = entry
    return out


#: What every OpenAI route may answer (routes that run jobs add 409, 429 and 500).
OPENAI_ERRORS = error_responses(400, 401, 404, 413, 415)
JOB_ERRORS = error_responses(409, 429, 500)


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PREFIXES)


def error_body(
    message: str, *, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    kind, default_code = _KIND.get(status, ("server_error" if status >= 500 else "error", None))
    return {
        "error": {"message": message, "type": kind, "param": param, "code": code or default_code}
    }


class OpenAIError(Exception):
    """An error these routes answer themselves, in OpenAI's shape.

    ``retry=False`` adds ``x-should-retry: false``: the SDKs retry 409 and 5xx on their own,
    which for a job that failed (or was cancelled) would only run the same search again.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
        if not retry:
            self.headers["x-should-retry"] = "false"


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"The model `{model}` does not exist: GET /v1/models lists endpoints and "
        "strategy@endpoint pairs",
        param="model",
        code="model_not_found",
    )


async def openai_error_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OpenAIError)
    body = error_body(exc.message, status=exc.status, param=exc.param, code=exc.code)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def _from_problem(status: int, raw: bytes) -> tuple[int, bytes]:
    """The OpenAI body (and status) for a problem+json body."""
    try:
        problem = json.loads(raw)
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    message = problem.get("detail") or problem.get("title") or "error"
    status = 400 if status == 422 else status
    body = error_body(str(message), status=status, param=problem.get("field"))
    return status, json.dumps(body).encode()


class OpenAIErrors:
    """ASGI middleware: problem+json answers on OpenAI paths become OpenAI error bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_openai_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewriting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                media = headers.get(b"content-type", b"").split(b";")[0].strip()
                if media == PROBLEM_MEDIA_TYPE.encode():
                    start = message  # hold it until the whole body is here
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                status, body = _from_problem(start["status"], b"".join(chunks))
                kept = [
                    (k, v)
                    for k, v in start.get("headers") or []
                    if k.lower() not in (b"content-type", b"content-length")
                ]
                kept += [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({**start, "status": status, "headers": kept})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, rewriting_send)
