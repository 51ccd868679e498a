"""Failures of HTTP requests to inference and reward servers, said in words.

A job's error is often the first thing an operator reads about a misconfigured endpoint, so
it names the request and the real cause: ``POST http://gpu-1:8000/v1/chat/completions:
connection refused (is the server running there?)`` rather than "timeout"; ``POST
http://gpu-1:8000/chat/completions answered 404: is base_url missing /v1?`` rather than
"HTTP 404".
"""

from __future__ import annotations

import errno
from urllib.parse import urlsplit

import httpx

__all__ = ["describe_status", "describe_transport_error", "missing_v1"]


def _causes(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _refused(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return True
        if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
            return True
        if "connection refused" in str(cause).lower():
            return True
    return False


def describe_transport_error(exc: httpx.HTTPError, url: str, timeout_s: float) -> str:
    """What went wrong with ``POST url`` when no HTTP answer came back."""
    where = f"POST {url}"
    # Before the timeout branch: the aiohttp transport reports a refused connection as a
    # ConnectTimeout (its cause chain holds the ConnectionRefusedError).
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) and _refused(exc):
        return f"{where}: connection refused (is the server running there?)"
    if isinstance(exc, httpx.ConnectTimeout):
        return f"{where}: could not connect within {timeout_s:g}s (timeout)"
    if isinstance(exc, httpx.TimeoutException):
        return f"{where}: timeout after {timeout_s:g}s without an answer"
    if isinstance(exc, httpx.ConnectError):
        detail = str(exc) or type(exc).__name__
        return f"{where}: cannot connect: {detail}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return f"{where}: the server dropped the connection without an answer ({exc or 'reset'})"
    detail = str(exc) or type(exc).__name__
    return f"{where}: transport error: {type(exc).__name__}: {detail}"


def missing_v1(url: str) -> bool:
    """Whether an OpenAI-style route was called without the usual ``/v1`` prefix."""
    return "/v1/" not in urlsplit(url).path + "/"


def describe_status(url: str, status: int, body: str, *, openai_route: bool = True) -> str:
    """An HTTP error answer in words, with a hint where one is likely: a 404 from an
    OpenAI route whose URL lacks ``/v1``."""
    where = f"POST {url} answered {status}"
    text = " ".join(body.split())[:300]
    if status == 404 and openai_route and missing_v1(url):
        return f"{where}: is base_url missing /v1? ({text or 'no body'})"
    return f"{where}: {text}" if text else where
