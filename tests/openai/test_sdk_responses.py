"""The Responses API through the official SDK: background jobs that go queued ->
in_progress -> completed, direct answers, streams, and cancel."""

from __future__ import annotations

import time

import openai
import pytest

from tests.openai.conftest import QUESTION, SLOW, FrontDoor

pytestmark = pytest.mark.integration

VOTE = {"ttc": {"params": {"n": 4}}}


def test_background_response_goes_queued_in_progress_completed(
    door: FrontDoor, key: str, client: openai.OpenAI
) -> None:
    created = client.responses.create(
        model=f"self_consistency@{SLOW}", input=QUESTION, background=True, extra_body=VOTE
    )
    assert created.status == "queued" and created.id.startswith("resp_")
    job_id = created.model_extra["ttc"]["job_id"]  # type: ignore[index]
    seen = [created.status]
    deadline = time.monotonic() + 60
    while seen[-1] not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
        status = client.responses.retrieve(created.id).status
        if status != seen[-1]:
            seen.append(status)
    assert seen == ["queued", "in_progress", "completed"]
    done = client.responses.retrieve(created.id)
    job = door.job(key, job_id)
    assert done.output_text == job["result"]["text"]
    assert done.usage is not None and done.usage.output_tokens == job["usage"]["completion_tokens"]
    assert done.model == f"self_consistency@{SLOW}"


def test_response_without_background_answers_directly(
    door: FrontDoor, key: str, client: openai.OpenAI
) -> None:
    response = client.responses.create(
        model="self_consistency@sim",
        instructions="Solve the problem step by step.",
        input=[{"role": "user", "content": QUESTION}],
        extra_body=VOTE,
    )
    assert response.status == "completed"
    job = door.job(key, response.model_extra["ttc"]["job_id"])  # type: ignore[index]
    assert response.output_text == job["result"]["text"]
    assert job["params"]["n"] == 4


def test_response_stream_events(door: FrontDoor, key: str, client: openai.OpenAI) -> None:
    stream = client.responses.create(
        model="self_consistency@sim", input=QUESTION, stream=True, extra_body=VOTE
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.in_progress" in kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert text and text == final.output_text
    job = door.job(key, final.model_extra["ttc"]["job_id"])  # type: ignore[index]
    assert text == job["result"]["text"]


def test_cancel_a_background_response(door: FrontDoor, key: str, client: openai.OpenAI) -> None:
    created = client.responses.create(
        model=f"self_consistency@{SLOW}", input=QUESTION, background=True, extra_body=VOTE
    )
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(created.id).status == "cancelled"
    job = door.job(key, created.model_extra["ttc"]["job_id"])  # type: ignore[index]
    assert job["status"] == "cancelled"


def test_unknown_or_foreign_response_is_not_found(door: FrontDoor, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_not_one_of_ours")
    other = openai.OpenAI(base_url=door.base_url, api_key=door.new_key(), max_retries=0)
    created = other.responses.create(
        model="self_consistency@sim", input=QUESTION, background=True, extra_body=VOTE
    )
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)  # another tenant's job is a 404
    other.close()
