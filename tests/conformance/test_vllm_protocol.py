"""What real vLLM does with the requests ttc shapes: the probe finds it, its templates
really trim and re-render (the breaks of issue 12, reproduced on the server), and ttc's
continuation reaches the model untouched."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.conformance.servers import MODEL_NAMES, ServerProcess, VllmFleet
from ttc_core.inference import GenerationRequest, InferenceClient, LocalLimiter
from ttc_core.inference.servers import forget_probes, resolve_profile
from ttc_core.settings import EndpointConfig

MESSAGES = [{"role": "user", "content": "What is 2+2?"}]


def endpoint(server: ServerProcess, role: str) -> EndpointConfig:
    return EndpointConfig(base_url=server.base_url, model=MODEL_NAMES[role], max_retries=1)


def server_render(
    server: ServerProcess, role: str, messages: list[dict[str, Any]], **kw: Any
) -> str:
    """The prompt the server's own template makes of ``messages`` (its /tokenize, then
    /detokenize)."""
    body = {"model": MODEL_NAMES[role], "messages": messages, **kw}
    ids = httpx.post(server.url + "/tokenize", json=body, timeout=30).json()["tokens"]
    detok = {"model": MODEL_NAMES[role], "tokens": ids}
    return str(httpx.post(server.url + "/detokenize", json=detok, timeout=30).json()["prompt"])


def generate(
    server: ServerProcess, role: str, req: GenerationRequest
) -> tuple[Any, list[dict[str, Any]]]:
    """``req`` through ttc's client; the bodies it sent and the usage vLLM answered."""
    sent: list[dict[str, Any]] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path.endswith("completions"):
            sent.append(json.loads(request.content))

    async def go() -> Any:
        forget_probes()
        async with httpx.AsyncClient(event_hooks={"request": [record]}, timeout=60) as http:
            client = InferenceClient(role, endpoint(server, role), http, LocalLimiter())
            return await client.generate(req)

    return asyncio.run(go()), sent


def test_the_probe_finds_vllm_and_its_version(vllm_fleet: VllmFleet) -> None:
    async def go() -> tuple[str, str | None]:
        forget_probes()
        async with httpx.AsyncClient() as http:
            profile = await resolve_profile(endpoint(vllm_fleet.llama3, "llama3"), http)
            return profile.kind, profile.version

    kind, version = asyncio.run(go())
    reported = httpx.get(vllm_fleet.llama3.url + "/version").json()["version"]
    assert (kind, version) == ("vllm", reported)


def test_trimming_template_cuts_the_delimiter_but_ttcs_continuation_keeps_it(
    vllm_fleet: VllmFleet,
) -> None:
    server = vllm_fleet.llama3
    path = "Step one: 48 / 2 = 24.\n\n"
    # the server's own continue_final_message rendering loses the delimiter (the bug)
    cut = server_render(
        server,
        "llama3",
        [*MESSAGES, {"role": "assistant", "content": path}],
        add_generation_prompt=False,
        continue_final_message=True,
    )
    assert cut.endswith("Step one: 48 / 2 = 24.") and not cut.endswith("\n\n")
    # ttc renders the chat once and appends the path as it is
    req = GenerationRequest(
        n=2, messages=MESSAGES, seed=1, max_tokens=8, stop=["\n\n"], continue_text=path
    )
    gen, sent = generate(server, "llama3", req)
    (body,) = sent
    opening = server_render(server, "llama3", MESSAGES, add_generation_prompt=True)
    assert body["prompt"] == opening + path
    counted = httpx.post(
        server.url + "/tokenize",
        json={
            "model": MODEL_NAMES["llama3"],
            "prompt": body["prompt"],
            "add_special_tokens": False,
        },
    ).json()["count"]
    assert sum(c.prompt_tokens for c in gen.choices) == counted  # what the model really read
    assert len(gen.choices) == 2


def test_qwen3_template_re_renders_a_continued_thought_but_ttcs_does_not(
    vllm_fleet: VllmFleet,
) -> None:
    server = vllm_fleet.qwen3
    thought = "<think>\nFirst, 48 / 2"
    rendered = server_render(
        server,
        "qwen3",
        [*MESSAGES, {"role": "assistant", "content": thought}],
        add_generation_prompt=False,
        continue_final_message=True,
    )
    # the template's "thinking off" block lands in front of the thought (the bug)
    assert "<think>\n\n</think>\n\n<think>\nFirst" in rendered
    req = GenerationRequest(n=1, messages=MESSAGES, seed=2, max_tokens=8, continue_text=thought)
    _, sent = generate(server, "qwen3", req)
    (body,) = sent
    assert body["prompt"].endswith("<|im_start|>assistant\n" + thought)
    assert body["prompt"].count("<think>") == 1
    # and the answer after a closed thought that does not end in a newline is accepted
    closed = thought + " is 24.</think>\n\n"
    answer = GenerationRequest(n=1, messages=MESSAGES, seed=2, max_tokens=8, continue_text=closed)
    gen, sent = generate(server, "qwen3", answer)
    assert sent[0]["prompt"].endswith(closed) and len(gen.choices) == 1
