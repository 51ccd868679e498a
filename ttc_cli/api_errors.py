"""How a CLI command that talks to the ttc API says what went wrong: one line that names
what to check, never a traceback.

Wrap the command's body in :func:`api_errors`; it turns a connection failure (nothing
listening, a wrong host, a timeout), a server that does not answer as a ttc API (a wrong
port or path), a refused key and any other problem+json answer into one line on stderr
and an exit status, which it keeps in ``outcome.status``; so are an event stream that
stays lost after its reconnects and a wait that runs out::

    with api_errors("ttc run", server) as outcome:
        ...
    return outcome.status if outcome.status is not None else 0
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from ttc_api.client import APIError
from ttc_cli.usage import UsageError

#: Exit status of a command that could not talk to the API (as for usage errors).
UNREACHABLE = 2


@dataclass
class Outcome:
    #: The exit status when the command was stopped by an error; None when it was not.
    status: int | None = None


def check_server_url(url: str) -> str:
    """The API's base URL as the client wants it (it adds ``/v1/...`` itself)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--server {url}: give the API's URL, e.g. http://127.0.0.1:8000")
    if parts.path.rstrip("/").endswith("/v1"):
        fixed = url.rstrip("/").removesuffix("/v1")
        raise UsageError(f"--server {url}: drop the trailing /v1 (use {fixed})")
    return url


def describe_api_error(exc: APIError, server: str) -> str:
    """A refusal as one line, with what to do for the ones a setup causes."""
    if "type" not in exc.problem:
        # Not a problem+json, which every ttc answer is: another server answers there.
        return (
            f"the server at {server} is not a ttc API (HTTP {exc.status} {exc.title}); "
            "check --server (or TTC_SERVER): it is the address `ttc serve` prints"
        )
    if exc.status == 404 and not exc.detail:
        # ttc's answer for a route it does not have (a missing job says which job).
        return (
            f"the ttc API at {server} has no such route (404); check --server (or "
            "TTC_SERVER): the API's address without a path, e.g. http://127.0.0.1:8000"
        )
    if exc.status == 401:
        return f"refused: {exc}; give a key with --api-key or TTC_API_KEY"
    return f"refused: {exc}"


@contextmanager
def api_errors(command: str, server: str) -> Iterator[Outcome]:
    outcome = Outcome()
    try:
        yield outcome
    except UsageError as exc:
        outcome.status = _say(command, str(exc), UNREACHABLE)
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        outcome.status = _say(
            command,
            f"cannot reach the ttc API at {server} ({reason}); is `ttc serve` running "
            "there? Check --server (or TTC_SERVER).",
            UNREACHABLE,
        )
    except APIError as exc:
        outcome.status = _say(command, describe_api_error(exc, server), 2)
    except ConnectionError as exc:  # the client gave up reconnecting (an event stream)
        outcome.status = _say(
            command,
            f"lost the ttc API at {server} ({exc}); is `ttc serve` still running there?",
            UNREACHABLE,
        )
    except TimeoutError as exc:  # the client stopped waiting; the job itself goes on
        outcome.status = _say(command, f"{exc}; the job goes on on the server", 1)
    except (json.JSONDecodeError, ValidationError) as exc:  # an answer not from a ttc API
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        outcome.status = _say(
            command,
            f"the server at {server} does not answer as a ttc API ({first}); "
            "check --server (or TTC_SERVER)",
            UNREACHABLE,
        )


def _say(command: str, line: str, status: int) -> int:
    print(f"{command}: {line}", file=sys.stderr)
    return status
