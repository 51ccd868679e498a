"""Chat and text completions through the official ``openai`` SDK, sync and async, stream
and not, against the real stack: the answer is the job's, the usage is the job's, the job
is an ordinary one (listed, browsable in the UI)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import anyio
import httpx
import openai
import pytest

from tests.openai.conftest import QUESTION, FrontDoor
from ttc_core.verifiers.answers import extract_answer, normalize_answer

pytestmark = pytest.mark.integration

MESSAGES: list[Any] = [
    {"role": "system", "content": "Solve the problem step by step."},
    {"role": "user", "content": QUESTION},
]
VOTE = {"ttc": {"params": {"n": 16}}}


def _ttc(obj: Any) -> dict[str, Any]:
    extra = obj.model_extra or {}
    return dict(extra["ttc"])


def test_models_lists_endpoints_and_strategy_pairs(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    for model_id in ("sim", "self_consistency@sim", "beam_search@sim", "best_of_n@sim-slow"):
        assert model_id in models, sorted(models)
        assert models[model_id].owned_by == "ttc"
        assert models[model_id].object == "model"
    assert "sim-rm" not in models  # reward endpoints are not models to chat with
    assert client.models.retrieve("self_consistency@sim").id == "self_consistency@sim"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("self_consistency@nowhere")


def test_chat_returns_the_voted_answer_with_the_jobs_usage(
    door: FrontDoor, key: str, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="self_consistency@sim", messages=MESSAGES, extra_body=VOTE
    )
    completion = raw.parse()
    ttc = _ttc(completion)
    assert raw.headers["ttc-job-id"] == ttc["job_id"]
    job = door.job(key, ttc["job_id"])
    assert job["status"] == "succeeded"
    assert job["strategy"] == "self_consistency" and job["params"]["n"] == 16
    # The voted answer: the most votes of the job's tally, and the chosen sample's text.
    votes = job["result"]["details"]["votes"]
    assert sum(votes.values()) == 16
    assert votes[job["result"]["answer"]] == max(votes.values())
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == job["result"]["text"]
    content_answer = extract_answer(choice.message.content or "")
    assert normalize_answer(content_answer or "") == normalize_answer(job["result"]["answer"])
    assert choice.finish_reason in ("stop", "length")
    assert ttc["answer"] == job["result"]["answer"] and ttc["strategy"] == "self_consistency"
    assert ttc["ended_by"] == "strategy"
    # Usage is the whole job's: all 16 samples.
    assert completion.usage is not None
    assert completion.usage.completion_tokens == job["usage"]["completion_tokens"]
    assert completion.usage.prompt_tokens == job["usage"]["prompt_tokens"]
    assert completion.usage.total_tokens == job["usage"]["total_tokens"]
    details = completion.usage.completion_tokens_details
    assert details is not None and details.reasoning_tokens == job["usage"]["thinking_tokens"]
    assert completion.model == "self_consistency@sim"
    # An ordinary job: listed, and its tree opens in the UI.
    listed = door.http(key).get("/v1/jobs", params={"strategy": "self_consistency"}).json()
    assert ttc["job_id"] in [j["id"] for j in listed["data"]]
    # Log in to the UI as a person would (its form, its CSRF token), then open the tree.
    with httpx.Client(timeout=30, follow_redirects=True) as browser:
        form = browser.get(f"{door.url}/ui/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        browser.post(
            f"{door.url}/ui/login",
            data={"key": key, "csrf": csrf.group(1), "next": "/ui"},
            headers={"Origin": door.url},
        )
        page = browser.get(ttc["tree_url"])
    assert page.status_code == 200 and ttc["job_id"] in page.text


def test_n_returns_distinct_answers_in_vote_order(
    door: FrontDoor, key: str, client: openai.OpenAI
) -> None:
    completion = client.chat.completions.create(
        model="self_consistency@sim",
        messages=MESSAGES,
        n=4,
        temperature=1.5,  # a spread of answers to rank
        extra_body={"ttc": {"params": {"n": 24}}},
    )
    job = door.job(key, _ttc(completion)["job_id"])
    assert job["params"]["temperature"] == 1.5
    votes = Counter(job["result"]["details"]["votes"])
    answers = [c.model_extra["ttc"]["answer"] for c in completion.choices]  # type: ignore[index]
    assert len(answers) == min(4, len(votes)) and len(set(answers)) == len(answers)
    assert [c.index for c in completion.choices] == list(range(len(answers)))
    counts = [votes[a] for a in answers]
    assert counts == sorted(counts, reverse=True)
    assert answers[0] == job["result"]["answer"]


def test_plain_endpoint_is_one_sample(door: FrontDoor, key: str, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="sim", messages=[{"role": "user", "content": "Write one line about the sea."}]
    )
    job = door.job(key, _ttc(completion)["job_id"])
    assert job["strategy"] == "sample" and job["progress"]["nodes"] == 1  # one sample
    assert completion.choices[0].message.content


def test_stream_relays_progress_then_content_and_usage(
    door: FrontDoor, key: str, client: openai.OpenAI
) -> None:
    stream = client.chat.completions.create(
        model="self_consistency@sim",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=VOTE,
    )
    chunks = list(stream)  # the SDK raises on anything it cannot read
    job_id = _ttc(chunks[0])["job_id"]
    progress = [c for c in chunks if (c.model_extra or {}).get("ttc", {}).get("progress")]
    assert any(p.model_extra["ttc"]["progress"]["event"] == "nodes_added" for p in progress)  # type: ignore[index]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    job = door.job(key, job_id)
    assert text == job["result"]["text"]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and finishes.count(finishes[-1]) == 1
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.completion_tokens == job["usage"]["completion_tokens"]
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_text_completion(door: FrontDoor, key: str, client: openai.OpenAI) -> None:
    completion = client.completions.create(
        model="self_consistency@sim", prompt=QUESTION, max_tokens=256, extra_body=VOTE
    )
    job = door.job(key, _ttc(completion)["job_id"])
    assert completion.object == "text_completion"
    assert completion.choices[0].text == job["result"]["text"]
    assert job["params"]["max_tokens"] == 256
    streamed = client.completions.create(
        model="self_consistency@sim", prompt=QUESTION, stream=True, extra_body=VOTE
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices)


def test_async_client_streams_and_answers(door: FrontDoor, key: str) -> None:
    async def main() -> tuple[str, str, str, str]:
        async with openai.AsyncOpenAI(
            base_url=door.base_url, api_key=key, max_retries=0, timeout=60
        ) as sdk:
            done = await sdk.chat.completions.create(
                model="self_consistency@sim", messages=MESSAGES, extra_body=VOTE
            )
            stream = await sdk.chat.completions.create(
                model="self_consistency@sim", messages=MESSAGES, stream=True, extra_body=VOTE
            )
            parts, job_id = [], ""
            async for chunk in stream:
                job_id = job_id or _ttc(chunk)["job_id"]
                if chunk.choices:
                    parts.append(chunk.choices[0].delta.content or "")
            answer = done.choices[0].message.content or ""
            return answer, _ttc(done)["job_id"], "".join(parts), job_id

    content, first, streamed, second = anyio.run(main)
    assert content == door.job(key, first)["result"]["text"]
    assert streamed == door.job(key, second)["result"]["text"]


def test_the_sdks_stream_helper_accumulates_the_answer(
    door: FrontDoor, key: str, client: openai.OpenAI
) -> None:
    with client.chat.completions.stream(
        model="self_consistency@sim", messages=MESSAGES, extra_body=VOTE
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    content = final.choices[0].message.content
    assert content == "".join(deltas)
    assert content == door.job(key, _ttc(final)["job_id"])["result"]["text"]
