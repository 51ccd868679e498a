"""What a CLI command says when the API cannot be used (``ttc_cli.api_errors``): one line
on stderr naming what to check, and an exit status; the client runs over an in-memory
transport that answers as the wrong server would."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from ttc_api.client import TTCClient
from ttc_cli.api_errors import api_errors

SERVER = "http://127.0.0.1:8000"


def _through(answer: Callable[[httpx.Request], httpx.Response]) -> int | None:
    """The exit status of a command that reads a job from a server answering so."""
    client = TTCClient(SERVER, transport=httpx.MockTransport(answer))
    with api_errors("ttc x", SERVER) as outcome:
        client.get_job("j1")
    return outcome.status


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_nothing_listening(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    status = _through(refuse)
    assert status == 2
    assert _err(capsys) == (
        f"ttc x: cannot reach the ttc API at {SERVER} ([Errno 111] Connection refused); "
        "is `ttc serve` running there? Check --server (or TTC_SERVER)."
    )


def test_an_html_page_is_not_a_ttc_api(capsys: pytest.CaptureFixture[str]) -> None:
    status = _through(lambda r: httpx.Response(200, text="<html>welcome</html>"))
    assert status == 2
    assert _err(capsys).startswith(f"ttc x: the server at {SERVER} does not answer as a ttc API")


def test_json_of_another_shape_is_not_a_ttc_api(capsys: pytest.CaptureFixture[str]) -> None:
    status = _through(lambda r: httpx.Response(200, json={"hello": "world"}))
    assert status == 2
    assert "does not answer as a ttc API" in _err(capsys)


def test_another_servers_error_page(capsys: pytest.CaptureFixture[str]) -> None:
    status = _through(lambda r: httpx.Response(502, text="Bad Gateway"))
    assert status == 2
    assert _err(capsys) == (
        f"ttc x: the server at {SERVER} is not a ttc API (HTTP 502 Bad Gateway); check "
        "--server (or TTC_SERVER): it is the address `ttc serve` prints"
    )


def test_a_missing_key_says_how_to_give_one(capsys: pytest.CaptureFixture[str]) -> None:
    problem = {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": "no key"}
    status = _through(lambda r: httpx.Response(401, json=problem))
    assert status == 2
    assert _err(capsys) == (
        "ttc x: refused: 401 Unauthorized: no key; give a key with --api-key or TTC_API_KEY"
    )


def test_a_missing_job_is_the_servers_own_words(capsys: pytest.CaptureFixture[str]) -> None:
    problem = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no job j1"}
    status = _through(lambda r: httpx.Response(404, json=problem))
    assert status == 2
    assert _err(capsys) == "ttc x: refused: 404 Not Found: no job j1"


def test_a_lost_event_stream_and_a_wait_that_ran_out(capsys: pytest.CaptureFixture[str]) -> None:
    with api_errors("ttc x", SERVER) as outcome:
        raise ConnectionError("event stream of j1: 11 failures in a row")
    assert outcome.status == 2
    assert _err(capsys) == (
        f"ttc x: lost the ttc API at {SERVER} (event stream of j1: 11 failures in a row); "
        "is `ttc serve` still running there?"
    )
    with api_errors("ttc x", SERVER) as outcome:
        raise TimeoutError("job j1 still running after 3600.0s")
    assert outcome.status == 1
    assert (
        _err(capsys) == "ttc x: job j1 still running after 3600.0s; the job goes on on the server"
    )


def test_no_error_leaves_the_status_unset() -> None:
    with api_errors("ttc x", SERVER) as outcome:
        pass
    assert outcome.status is None
