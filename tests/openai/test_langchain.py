"""``langchain-openai``'s ``ChatOpenAI`` pointed at ttc: ``invoke`` and ``stream``."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI

from tests.openai.conftest import QUESTION, FrontDoor

pytestmark = pytest.mark.integration


def _chat(door: FrontDoor, key: str) -> ChatOpenAI:
    return ChatOpenAI(
        model="self_consistency@sim",
        base_url=door.base_url,
        api_key=key,  # type: ignore[arg-type]
        max_retries=0,
        extra_body={"ttc": {"params": {"n": 8}}},
    )


def test_invoke_returns_the_jobs_answer(door: FrontDoor, key: str) -> None:
    message = _chat(door, key).invoke(QUESTION)
    job_id = message.response_metadata["id"].removeprefix("chatcmpl-")
    jobs = door.http(key).get("/v1/jobs").json()["data"]
    (job,) = [j for j in jobs if j["id"].replace("-", "") == job_id]
    assert message.content == job["result"]["text"]
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == job["usage"]["completion_tokens"]


def test_stream_yields_the_answer_in_pieces(door: FrontDoor, key: str) -> None:
    chunks = list(_chat(door, key).stream(QUESTION))
    text = "".join(str(c.content) for c in chunks)
    jobs = door.http(key).get("/v1/jobs").json()["data"]
    assert len(jobs) == 1 and text == jobs[0]["result"]["text"]
    assert sum(1 for c in chunks if c.content) > 1
