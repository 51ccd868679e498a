"""RFC 9457 problem+json errors, mapped from exceptions in one place.

Every error body names the offending ``field`` when there is one, and never carries a
stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ttc_core.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    QuotaError,
)

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, field=field, errors=errors)
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # Discriminated unions add the tag to the path ("verifier.regex.pattern").
    return ".".join(parts)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _loc_to_field(e.get("loc", ())), "message": e.get("msg", "invalid")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": None, "message": "invalid request"}
    detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return problem_response(422, "Invalid request", detail, field=first["field"], errors=errors)


async def _input(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    return problem_response(exc.status, "Invalid request", str(exc), field=exc.field)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(404, "Not found", str(exc))


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(409, "Conflict", str(exc))


async def _unauthorized(request: Request, exc: Exception) -> JSONResponse:
    # RFC 6750: name the scheme, and say whether a key was sent but refused.
    sent = any(h in request.headers for h in ("authorization", "x-api-key"))
    challenge = 'Bearer error="invalid_token"' if sent else "Bearer"
    headers = {"WWW-Authenticate": challenge}
    return problem_response(401, "Unauthorized", str(exc), headers=headers)


async def _forbidden(_: Request, exc: Exception) -> JSONResponse:
    return problem_response(403, "Forbidden", str(exc))


async def _too_many(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuotaError)
    headers = {"Retry-After": str(exc.retry_after)}
    return problem_response(429, "Too many requests", str(exc), headers=headers)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, str(exc.detail), headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DataError) and "NUL" in str(exc.orig):
        # Postgres text cannot hold NUL; job submissions name the field before this.
        return problem_response(
            422, "Invalid request", "text must not contain a NUL character (\\u0000)"
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(500, "Internal error", "the error was logged")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(InputError, _input)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(AuthError, _unauthorized)
    app.add_exception_handler(ForbiddenError, _forbidden)
    app.add_exception_handler(QuotaError, _too_many)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)


#: Every error status the API answers, with the text and the example body the OpenAPI
#: document shows for it (all are ``application/problem+json`` :class:`Problem` bodies).
PROBLEM_DOCS: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "Malformed request (a body or cursor that cannot be read)",
        {"title": "Invalid request", "status": 400, "detail": "malformed cursor"},
    ),
    401: (
        "No API key, or an unknown, malformed or revoked one",
        {"title": "Unauthorized", "status": 401, "detail": "missing API key"},
    ),
    403: (
        "A valid key without the admin role, on an admin route",
        {"title": "Forbidden", "status": 403, "detail": "this route needs an admin key"},
    ),
    404: (
        "No such job or node (another tenant's job is a 404 too)",
        {"title": "Not found", "status": 404, "detail": "no job 7d6f0c1e"},
    ),
    409: (
        "Conflict with the job's state (or an Idempotency-Key still in progress)",
        {"title": "Conflict", "status": 409, "detail": "job 7d6f0c1e is succeeded"},
    ),
    413: (
        "Request body too large",
        {"title": "Request body too large", "status": 413, "detail": "the limit is 1048576 bytes"},
    ),
    415: (
        "Request body is not JSON (send Content-Type: application/json)",
        {"title": "Unsupported media type", "status": 415, "detail": "send application/json"},
    ),
    422: (
        "Invalid request; `field` names the offending field",
        {
            "title": "Invalid request",
            "status": 422,
            "detail": "params.n: Input should be greater than or equal to 1",
            "field": "params.n",
            "errors": [
                {"field": "params.n", "message": "Input should be greater than or equal to 1"}
            ],
        },
    ),
    429: (
        "Over the tenant's rate limit or concurrent-job quota; retry after `Retry-After`",
        {"title": "Too many requests", "status": 429, "detail": "rate limit: 60 per minute"},
    ),
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (for route decorators)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        text, example = PROBLEM_DOCS[code]
        entry: dict[str, Any] = {
            "model": Problem,
            "description": text,
            "content": {PROBLEM_MEDIA_TYPE: {"example": example}},
        }
        if code == 429:
            entry["headers"] = _RETRY_AFTER
        out[code] = entry
    return out


#: What a ``/v1`` route may answer: no valid key, validation of its parameters, and 404 for
#: a job the caller cannot see. (413, 415 and 400, which come from the middleware and body
#: parsing, are added to the document per route by ``ttc_api.openapi``; routes that can
#: answer 409, 403 or 429 declare them.)
PROBLEM_RESPONSES = problem_responses(401, 404, 422)
#: Routes that change a job's state add the conflicts.
STATE_PROBLEM_RESPONSES = problem_responses(409)
