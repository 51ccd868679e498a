"""Endpoints know their server: probing ``server: auto``, the profiles' defaults, operator
overrides, and how each profile shapes requests on the wire (fake servers over httpx's
``MockTransport``; the real servers are in ``tests/conformance``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ttc_core.engine.thinking import ThinkingSpec, with_controls
from ttc_core.inference import GenerationRequest, InferenceClient, LocalLimiter
from ttc_core.inference.client import join_turn
from ttc_core.inference.servers import (
    effective_reasoning,
    forget_probes,
    probe_server,
    profile_for,
    resolve_profile,
)
from ttc_core.settings import EndpointConfig, ServerOverrides

Handler = Callable[[httpx.Request], httpx.Response]


def _answer(kind: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        n = json.loads(request.content).get("n", 1)
        out = {"message": {"content": "x"}} if kind == "chat" else {"text": "y"}
        choices = [{"index": i, **out, "finish_reason": "stop"} for i in range(n)]
        usage = {"prompt_tokens": 3, "completion_tokens": n}
        return httpx.Response(200, json={"choices": choices, "usage": usage})

    return handler


CHAT_OK = _answer("chat")
TEXT_OK = _answer("text")
MESSAGES = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture(autouse=True)
def _fresh_probes() -> None:
    forget_probes()


def fake(routes: dict[str, Any], seen: list[httpx.Request]) -> Handler:
    """Answers each path in ``routes`` (a JSON body, or a handler); 404 for the rest."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = routes.get(request.url.path)
        if answer is None:
            return httpx.Response(404, json={"detail": "Not Found"})
        if callable(answer):
            return answer(request)  # type: ignore[no-any-return]
        return httpx.Response(200, json=answer)

    return handler


def probe(routes: dict[str, Any], **fields: Any) -> tuple[tuple[str, str | None], list[str]]:
    seen: list[httpx.Request] = []
    endpoint = EndpointConfig(base_url="http://gpu:8000/v1", model="m", **fields)

    async def go() -> tuple[str, str | None]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake(routes, seen))) as http:
            return await probe_server(endpoint, http)

    found = asyncio.run(go())
    return found, [r.url.path for r in seen]


def models(owner: str) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": owner}]}


def test_probe_names_each_server_by_its_own_answers() -> None:
    vllm = probe({"/v1/models": models("vllm"), "/version": {"version": "0.32.0"}})
    assert vllm == (("vllm", "0.32.0"), ["/v1/models", "/version"])
    assert probe({"/v1/models": models("sglang")})[0] == ("sglang", None)
    assert probe({"/v1/models": models("llamacpp")})[0] == ("llamacpp", None)
    # ttc's simulator and unknown OpenAI-style servers: one request, generic
    assert probe({"/v1/models": models("ttc-sim")}) == (("generic", None), ["/v1/models"])
    assert probe({"/v1/models": models("someone")}) == (("generic", None), ["/v1/models"])
    # no models route: the servers' own routes
    assert probe({"/props": {"default_generation_settings": {}, "build_info": "b1"}})[0] == (
        "llamacpp",
        "b1",
    )
    assert probe({"/get_server_info": {"tp_size": 1, "version": "0.5"}})[0] == ("sglang", "0.5")
    assert probe({"/version": {"version": "0.9.1"}})[0] == ("vllm", "0.9.1")
    # nothing answers (or the server is down): generic, and no exception
    assert probe({})[0] == ("generic", None)


def test_named_and_hosted_servers_are_not_probed() -> None:
    seen: list[httpx.Request] = []

    async def go(endpoint: EndpointConfig) -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake({}, seen))) as http:
            return (await resolve_profile(endpoint, http)).kind

    assert asyncio.run(go(EndpointConfig(base_url="http://x/v1", model="m", server="sglang")))
    hosted = EndpointConfig(base_url="https://api.openai.com/v1", model="gpt-5")
    assert asyncio.run(go(hosted)) == "openai"
    assert seen == []


def test_profiles_and_overrides() -> None:
    ep = EndpointConfig(base_url="http://x/v1", model="m")
    assert profile_for(ep, "vllm").continuation == "render"
    assert profile_for(ep, "vllm").thinking_budget_param == "thinking_token_budget"
    assert profile_for(ep, "sglang").shares_seed_across_n
    assert not profile_for(ep, "sglang").pooling
    assert not profile_for(ep, "openai").continue_final_message
    custom = EndpointConfig(
        base_url="http://x/v1",
        model="m",
        server="vllm",
        server_overrides=ServerOverrides(
            continuation="continue_final_message",
            thinking_budget_param=None,
            effort_aliases={"minimal": "low"},
        ),
    )
    profile = profile_for(custom, "vllm")
    assert profile.continuation == "continue_final_message"
    assert profile.thinking_budget_param is None  # null switches the field off
    assert profile.effort("minimal") == "low"
    assert profile.thinking_switch == "enable_thinking"  # not overridden: the default


def test_hosted_apis_get_no_forcing_and_no_vllm_fields() -> None:
    hosted = EndpointConfig(base_url="https://api.openai.com/v1", model="o4")
    controls = effective_reasoning(hosted, profile_for(hosted, "openai"))
    assert not controls.forcing
    assert controls.effort_param == "reasoning_effort" and controls.max_completion_tokens
    # what an operator set explicitly stays
    mine = hosted.model_copy(
        update={"reasoning": hosted.reasoning.model_copy(update={"effort_param": "effort"})}
    )
    mine.reasoning.model_fields_set.add("effort_param")
    assert effective_reasoning(mine, profile_for(mine, "openai")).effort_param == "effort"


def run_client(
    endpoint: EndpointConfig, routes: dict[str, Any], *reqs: GenerationRequest
) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake(routes, seen))) as http:
            client = InferenceClient("e", endpoint, http, LocalLimiter())
            for req in reqs:
                await client.generate(req)

    asyncio.run(go())
    return seen


def body(request: httpx.Request) -> dict[str, Any]:
    return json.loads(request.content)  # type: ignore[no-any-return]


RENDERED = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
RENDERED += "<|start_header_id|>assistant<|end_header_id|>\n\n"


def vllm_routes(render_calls: list[dict[str, Any]]) -> dict[str, Any]:
    def tokenize(request: httpx.Request) -> httpx.Response:
        render_calls.append(body(request))
        return httpx.Response(200, json={"count": 3, "tokens": [7, 8, 9]})

    return {
        "/tokenize": tokenize,
        "/detokenize": {"prompt": RENDERED},
        "/v1/completions": TEXT_OK,
        "/v1/chat/completions": CHAT_OK,
    }


def test_vllm_continues_the_rendered_prompt_with_the_turn_appended_exactly() -> None:
    ep = EndpointConfig(base_url="http://gpu:8000/v1", model="m", server="vllm")
    calls: list[dict[str, Any]] = []
    path = "Step one: 2+2.\n\n"  # the trailing delimiter a trimming template would cut
    step = GenerationRequest(n=2, messages=MESSAGES, seed=5, stop=["\n\n"], continue_text=path)
    seen = run_client(ep, vllm_routes(calls), step, step)
    sent = [r for r in seen if r.url.path == "/v1/completions"]
    assert len(sent) == 2
    wire = body(sent[0])
    assert wire["prompt"] == RENDERED + path
    assert wire["add_special_tokens"] is False
    assert wire["n"] == 2 and wire["seed"] == 5 and wire["stop"] == ["\n\n"]
    assert "messages" not in wire and "continue_final_message" not in wire
    # rendered once with the server's template and the generation prompt, then cached
    assert calls == [{"model": "m", "messages": MESSAGES, "add_generation_prompt": True}]
    # a request that continues nothing is a plain chat request
    seen = run_client(ep, vllm_routes(calls), GenerationRequest(n=1, messages=MESSAGES))
    assert [r.url.path for r in seen] == ["/v1/chat/completions"]


def test_a_server_without_render_routes_gets_continue_final_message() -> None:
    ep = EndpointConfig(base_url="http://gpu:8000/v1", model="m", server="vllm")
    turn = GenerationRequest(n=1, messages=MESSAGES, continue_text="<think>\nhm")
    seen = run_client(ep, {"/v1/chat/completions": CHAT_OK}, turn, turn)
    chats = [body(r) for r in seen if r.url.path == "/v1/chat/completions"]
    assert len(chats) == 2
    assert chats[0]["messages"][-1] == {"role": "assistant", "content": "<think>\nhm"}
    assert chats[0]["continue_final_message"] is True
    assert chats[0]["add_generation_prompt"] is False
    # the missing route is remembered: asked once
    assert sum(r.url.path == "/tokenize" for r in seen) == 1


def test_hosted_apis_never_get_continue_final_message() -> None:
    ep = EndpointConfig(base_url="https://api.openai.com/v1", model="gpt-5")
    turn = GenerationRequest(
        n=1,
        messages=MESSAGES,
        continue_text="Step one.\n\n",
        extra_body={"continue_final_message": True, "add_generation_prompt": False},
    )
    (request,) = run_client(ep, {"/v1/chat/completions": CHAT_OK}, turn)
    wire = body(request)
    assert "continue_final_message" not in wire and "add_generation_prompt" not in wire
    assert wire["messages"][-1] == {"role": "assistant", "content": "Step one.\n\n"}


def test_sglang_gets_a_distinct_seed_per_sample() -> None:
    ep = EndpointConfig(base_url="http://gpu:30000/v1", model="m", server="sglang")
    seen = run_client(
        ep, {"/v1/chat/completions": CHAT_OK}, GenerationRequest(n=4, messages=MESSAGES, seed=9)
    )
    assert sorted((body(r)["n"], body(r)["seed"]) for r in seen) == [
        (1, 9),
        (1, 10),
        (1, 11),
        (1, 12),
    ]
    # without a seed there is nothing to share: one request with n
    seen = run_client(
        ep, {"/v1/chat/completions": CHAT_OK}, GenerationRequest(n=1, messages=MESSAGES)
    )
    assert len(seen) == 1


def test_vllm_thinking_controls_use_vllms_names() -> None:
    ep = EndpointConfig(base_url="http://gpu:8000/v1", model="m", server="vllm")
    profile = profile_for(ep, "vllm")
    req = GenerationRequest(n=1, messages=MESSAGES, max_tokens=100)
    shaped = with_controls(req, ThinkingSpec(budget_tokens=300, effort="minimal"), ep, 0, profile)
    assert shaped.extra_body == {
        "thinking_token_budget": 300,
        "chat_template_kwargs": {"enable_thinking": True},
    }
    # budget forcing's own cap is ttc's, not the server's: no thinking_token_budget (vLLM
    # refuses it unless started with a reasoning parser)
    forced = with_controls(req, ThinkingSpec(min_tokens=10, max_tokens=200), ep, 0, profile)
    assert forced.extra_body == {"chat_template_kwargs": {"enable_thinking": True}}


def test_join_turn_never_opens_a_second_thought() -> None:
    assert join_turn("A:\n", "<think>\nhm", "<think>") == "A:\n<think>\nhm"
    assert join_turn("A:\n<think>\n", "<think>\nhm", "<think>") == "A:\n<think>\nhm"
    assert join_turn("A:\n", "step\n\n", "<think>") == "A:\nstep\n\n"


def test_an_effort_the_server_refuses_is_sent_one_step_down_and_remembered() -> None:
    # vLLM releases whose protocol lists low/medium/high only answer "minimal" with a 400
    def chat(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("reasoning_effort") == "minimal":
            msg = "1 validation error: reasoning_effort: Input should be 'low', 'medium' or "
            msg += "'high' [input_value='minimal']"
            return httpx.Response(400, json={"error": {"message": msg, "code": 400}})
        return CHAT_OK(request)

    ep = EndpointConfig(base_url="http://gpu:8000/v1", model="m", server="vllm")
    req = GenerationRequest(n=1, messages=MESSAGES, extra_body={"reasoning_effort": "minimal"})
    seen = run_client(ep, {"/v1/chat/completions": chat}, req, req)
    assert [body(r)["reasoning_effort"] for r in seen] == ["minimal", "low", "low"]
