"""OpenAI-shaped errors through the SDK: each status raises the class a user catches,
with ``param`` naming the parameter; and a streaming client that disconnects cancels its
job unless it asked to keep it."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.helpers import wait_until
from tests.openai.conftest import BROKEN, MAX_ACTIVE_JOBS, MAX_N, QUESTION, SLOW, FrontDoor

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": QUESTION}]


def test_bad_key_is_an_authentication_error(door: FrontDoor) -> None:
    with openai.OpenAI(base_url=door.base_url, api_key="ttc_wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.chat.completions.create(model="self_consistency@sim", messages=MESSAGES)  # type: ignore[arg-type]
        assert caught.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    for model in ("self_consistency@nowhere", "no_such_strategy@sim", "gpt-4o"):
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
        assert caught.value.code == "model_not_found" and caught.value.param == "model"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"extra_body": {"ttc": {"params": {"n": MAX_N + 1}}}}, "ttc.params.n"),
        ({"extra_body": {"ttc": {"params": {"n": 0}}}}, "ttc.params.n"),
        ({"temperature": 7.0}, "temperature"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"extra_body": {"ttc": {"verifier": {"kind": "regex"}}}}, "ttc.verifier.regex.pattern"),
        ({"extra_body": {"ttc": {"budget": {"max_tokens": -1}}}}, "ttc.budget.max_tokens"),
        ({"extra_body": {"ttc": {"nonsense": 1}}}, "ttc.nonsense"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ],
)
def test_bad_parameters_are_bad_requests_naming_the_param(
    client: openai.OpenAI, kwargs: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="self_consistency@sim",
            messages=MESSAGES,  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )
    assert caught.value.status_code == 400
    assert caught.value.param == param, caught.value.body
    assert caught.value.type == "invalid_request_error"


def test_a_strategy_that_needs_a_scorer_says_which(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="beam_search@sim", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.param == "ttc.prm"


def test_over_the_active_job_quota_is_a_rate_limit_error(
    door: FrontDoor, client: openai.OpenAI
) -> None:
    ids = []
    for _ in range(MAX_ACTIVE_JOBS):
        ids.append(
            client.responses.create(
                model=f"self_consistency@{SLOW}", input=QUESTION, background=True
            ).id
        )
    try:
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=f"self_consistency@{SLOW}", messages=MESSAGES)  # type: ignore[arg-type]
        assert int(caught.value.response.headers["retry-after"]) >= 1
        assert caught.value.type == "rate_limit_error"
    finally:
        for response_id in ids:
            client.responses.cancel(response_id)


def test_openai_batches_is_a_clean_not_found(client: openai.OpenAI, door: FrontDoor) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.batches.list()
    assert "/v1/problem-batches" in caught.value.message
    # ttc's own problem batches moved there.
    assert door.admin.get("/v1/problem-batches").status_code == 200


def _stream_then_hang_up(door: FrontDoor, key: str, keep: bool) -> str:
    body = {
        "model": f"self_consistency@{SLOW}",
        "messages": MESSAGES,
        "stream": True,
        "ttc": {"params": {"n": 4}, "keep": keep},
    }
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(base_url=door.url, timeout=30) as http,
        http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp,
    ):
        assert resp.status_code == 200
        first = next(line for line in resp.iter_lines() if line.startswith("data: "))
        return str(json.loads(first[len("data: ") :])["ttc"]["job_id"])


def test_a_stream_that_disconnects_cancels_its_job(door: FrontDoor, key: str) -> None:
    job_id = _stream_then_hang_up(door, key, keep=False)
    wait_until(lambda: door.job(key, job_id)["status"] == "cancelled", timeout=20)


def test_keep_lets_the_job_finish_without_its_client(door: FrontDoor, key: str) -> None:
    job_id = _stream_then_hang_up(door, key, keep=True)
    assert door.wait_job(key, job_id)["status"] == "succeeded"


def test_a_failed_job_is_a_server_error_the_sdk_does_not_retry(door: FrontDoor, key: str) -> None:
    with (
        openai.OpenAI(base_url=door.base_url, api_key=key, max_retries=2) as retrying,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        retrying.chat.completions.create(model=BROKEN, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.code == "job_failed"
    job_id = caught.value.response.headers["ttc-job-id"]
    assert job_id in caught.value.message
    jobs = door.http(key).get("/v1/jobs").json()["data"]
    assert [j["id"] for j in jobs] == [job_id]  # one job: the SDK did not retry
    assert jobs[0]["status"] == "failed" and jobs[0]["error"]


def test_a_failed_job_in_a_stream_raises(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=BROKEN, messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert "failed" in caught.value.message


def test_a_waiting_client_that_hangs_up_cancels_its_job(door: FrontDoor, key: str) -> None:
    body = {"model": f"self_consistency@{SLOW}", "messages": MESSAGES, "ttc": {"params": {"n": 4}}}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{door.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(10, read=0.5),
        )
    (job,) = door.http(key).get("/v1/jobs").json()["data"]
    wait_until(lambda: door.job(key, job["id"])["status"] == "cancelled", timeout=20)
