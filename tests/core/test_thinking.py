"""Extended thinking without I/O: the option's checks (each naming its field), request
shaping with an endpoint's reasoning controls, and the planning view strategies see."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ttc_core.engine.thinking import (
    Conversation,
    ThinkingSpec,
    answer_request,
    append_word,
    check_thinking,
    continuation,
    planning_view,
    with_controls,
)
from ttc_core.errors import InputError, LimitError
from ttc_core.inference import GenerationRequest
from ttc_core.search.strategies import get_strategy
from ttc_core.search.tree import NodeView, TreeView
from ttc_core.settings import EndpointConfig, ReasoningControls, Settings

SETTINGS = Settings(max_thinking_tokens=10_000, default_thinking_tokens=2_000)
SIM = EndpointConfig(base_url="http://sim/v1", model="m")
HIDDEN = EndpointConfig(
    base_url="http://o/v1",
    model="o",
    reasoning=ReasoningControls(
        effort_param="reasoning_effort",
        max_completion_tokens=True,
        think_open=None,
        think_close=None,
    ),
)


@pytest.mark.parametrize(
    ("thinking", "endpoint", "field", "error"),
    [
        ({"max_tokens": 10_001}, SIM, "thinking.max_tokens", LimitError),
        ({"min_tokens": 50_000}, SIM, "thinking.min_tokens", LimitError),
        ({"budget_tokens": 10**9}, SIM, "thinking.budget_tokens", LimitError),
        ({"min_tokens": 500, "max_tokens": 400}, SIM, "thinking.min_tokens", InputError),
        ({"min_tokens": 2_001}, SIM, "thinking.min_tokens", InputError),  # over the default cap
        ({"min_tokens": 10}, HIDDEN, "thinking.min_tokens", InputError),
    ],
)
def test_bad_thinking_is_refused_by_name(
    thinking: dict[str, Any], endpoint: EndpointConfig, field: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as exc:
        check_thinking(ThinkingSpec.model_validate(thinking), endpoint, SETTINGS)
    assert isinstance(exc.value, InputError) and exc.value.field == field


@pytest.mark.parametrize(
    ("thinking", "loc"),
    [
        ({"min_tokens": -1}, "min_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"budget_tokens": -5}, "budget_tokens"),
        ({"effort": "extreme"}, "effort"),
        ({"max_forcings": -1}, "max_forcings"),
        ({"force_word": ""}, "force_word"),
        ({"wait": True}, "wait"),
    ],
)
def test_malformed_thinking_fails_validation_at_its_field(
    thinking: dict[str, Any], loc: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        ThinkingSpec.model_validate(thinking)
    assert exc.value.errors()[0]["loc"] == (loc,)


def test_good_thinking_passes_and_caps() -> None:
    check_thinking(ThinkingSpec(min_tokens=1_000, max_tokens=10_000), SIM, SETTINGS)
    check_thinking(ThinkingSpec(effort="high"), HIDDEN, SETTINGS)
    assert ThinkingSpec().cap(SETTINGS) == 2_000
    assert ThinkingSpec(max_tokens=77).cap(SETTINGS) == 77


def _request() -> GenerationRequest:
    return GenerationRequest(
        n=1, messages=[{"role": "user", "content": "q"}], max_tokens=300, extra_body={"x": 1}
    )


def test_controls_go_under_the_endpoint_names() -> None:
    spec = ThinkingSpec(effort="high", budget_tokens=4096)
    vllm = EndpointConfig(
        base_url="http://v/v1",
        model="qwen3",
        reasoning=ReasoningControls(
            enable_param="enable_thinking",
            budget_param="thinking_budget",
            budget_in="chat_template_kwargs",
        ),
    )
    shaped = with_controls(_request(), spec, vllm)
    assert shaped.extra_body == {
        "x": 1,
        "chat_template_kwargs": {"enable_thinking": True, "thinking_budget": 4096},
    }
    top = EndpointConfig(
        base_url="http://v/v1",
        model="m",
        reasoning=ReasoningControls(budget_param="thinking_budget", effort_param="effort"),
    )
    assert with_controls(_request(), spec, top).extra_body == {
        "x": 1,
        "thinking_budget": 4096,
        "effort": "high",
    }
    # hidden thinking: the cap covers thought and answer, and max_tokens is withdrawn
    openai = with_controls(_request(), spec, HIDDEN, hidden=5000)
    assert openai.extra_body == {
        "x": 1,
        "reasoning_effort": "high",
        "max_completion_tokens": 5300,
        "max_tokens": None,
    }
    # an endpoint without controls gets nothing new
    assert with_controls(_request(), spec, SIM).extra_body == {"x": 1}


def test_rounds_continue_the_thought_on_both_apis() -> None:
    convo = Conversation([{"role": "user", "content": "What is 2+2?"}], "What is 2+2?")
    req = continuation(
        convo, "<think>\nhm", seed=4, temperature=0.7, top_p=1.0, max_tokens=9, stop=["</think>"]
    )
    # the conversation before the turn, and the turn to continue exactly (the client sends
    # it as the server wants: rendered on vLLM, a final assistant message elsewhere)
    assert req.messages == [{"role": "user", "content": "What is 2+2?"}]
    assert req.continue_text == "<think>\nhm"
    assert req.extra_body is None
    assert req.prompt == "What is 2+2?\n\n<think>\nhm"
    assert (req.n, req.seed, req.max_tokens, req.stop) == (1, 4, 9, ["</think>"])
    answer = answer_request(
        convo,
        ReasoningControls(answer_cue="\nFinal answer: "),
        "hm Wait, yes",
        seed=4,
        temperature=0.7,
        top_p=1.0,
        max_tokens=50,
        stop=None,
    )
    assert answer.prompt is not None
    assert answer.prompt.endswith("<think>\nhm Wait, yes</think>\nFinal answer: ")
    assert append_word("so 4.", "Wait") == "so 4. Wait"
    assert append_word("so 4.\n", "Wait") == "so 4.\nWait"


def _node(nid: str, parent: str | None, depth: int, index: int, role: str, **kw: Any) -> NodeView:
    return NodeView(nid, parent, depth, index, role, kw.pop("status", "done"), **kw)


def test_planning_view_puts_answers_in_their_thoughts_place() -> None:
    tree = TreeView.build(
        [
            _node("r", None, 0, 0, "root"),
            _node("t0", "r", 1, 0, "think", completion_tokens=100),
            _node("a0", "t0", 2, 0, "sample", is_terminal=True, answer="4", completion_tokens=9),
            _node("t1", "r", 1, 1, "think", completion_tokens=50),  # its answer never landed
            _node("t2", "r", 1, 2, "think", completion_tokens=70),
            _node("a2", "t2", 2, 0, "sample", is_terminal=True, answer="5", completion_tokens=8),
            _node("c2", "a2", 3, 0, "critique"),  # Refine's critique of an answer
        ]
    )
    view = planning_view(tree)
    kids = view.children("r")
    assert [(n.id, n.child_index, n.depth) for n in kids] == [
        ("a0", 0, 1),
        ("t1", 1, 1),
        ("a2", 2, 1),
    ]
    assert view.nodes["a0"].completion_tokens == 109
    assert view.nodes["c2"].depth == 2 and view.nodes["c2"].parent_id == "a2"
    assert view.next_child_index("r") == 3
    # strategies pick among answers as if there were no thoughts
    sc = get_strategy("self_consistency")
    plan = sc.plan(view, sc.parse_params({"n": 3}), {})
    assert plan.finish is not None and plan.finish.node_id == "a0"


def test_planning_view_leaves_trees_without_thoughts_alone() -> None:
    tree = TreeView.build([_node("r", None, 0, 0, "root"), _node("s", "r", 1, 0, "sample")])
    assert planning_view(tree) is tree


def test_think_strategy_samples_once_and_takes_the_answer() -> None:
    think = get_strategy("think")
    params = think.parse_params({})
    empty = TreeView.build([_node("r", None, 0, 0, "root")])
    plan = think.plan(empty, params, {})
    assert [(e.parent_id, e.k, e.role) for e in plan.expansions] == [("r", 1, "sample")]
    done = planning_view(
        TreeView.build(
            [
                _node("r", None, 0, 0, "root"),
                _node("t", "r", 1, 0, "think", completion_tokens=300),
                _node("a", "t", 2, 0, "sample", is_terminal=True, answer="7", score=1.0),
            ]
        )
    )
    finish = think.plan(done, params, {}).finish
    assert finish is not None and (finish.node_id, finish.answer) == ("a", "7")
    unanswered = planning_view(
        TreeView.build([_node("r", None, 0, 0, "root"), _node("t", "r", 1, 0, "think")])
    )
    failed = think.plan(unanswered, params, {}).finish
    assert failed is not None and failed.error
