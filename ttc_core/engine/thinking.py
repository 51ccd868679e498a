"""Extended thinking: the job-level ``thinking`` option, the endpoint's reasoning controls,
and budget forcing (s1).

Any job may carry ``"thinking": {"effort": "high", "budget_tokens": 4096, "min_tokens":
1000, "max_tokens": 8000, "force_word": "Wait", "max_forcings": 8}``. What happens depends
on the endpoint's :class:`~ttc_core.settings.ReasoningControls`:

- Its *controls* (``reasoning_effort``-style effort, a thinking-budget field, an
  ``enable_thinking`` template switch, ``max_completion_tokens``) go with every generation
  request of the job, under the names the endpoint gives them; controls it lacks are not
  sent.
- When its model thinks in visible delimiters (``<think>…</think>``), each whole-answer
  sample (role ``sample``: best-of-N, self-consistency, ``think``, Refine's first attempt)
  thinks first under ttc's control, one request per round, each continuing the thought so
  far (as step continuation does: on vLLM the chat rendered once by the server's own
  template with the thought appended exactly, on the completions API, so a template that
  re-renders the last turn (Qwen3) never adds an empty think block or refuses the answer
  request; a final assistant message with ``continue_final_message`` on other chat
  servers; the question and the thought as one prompt on completions endpoints):
  generate with ``stop=[think_close]`` and ``max_tokens`` = what is left of the cap;
  a thought that ends before ``min_tokens`` gets the force word ("Wait") and goes on (at
  most ``max_forcings`` times); one that reaches ``max_tokens`` is closed. Then the thought
  is closed (``think_close`` + the answer cue) and the answer is asked for. The thought is
  saved as a ``think`` node and the answer as its ``sample`` child.

Every round is an ``n=1`` request, so the server's usage is exact per thought: the thinking
tokens of a node are what the server counted, and their sum never exceeds ``max_tokens``
because no round may ask for more than is left.

Strategies plan on :func:`planning_view`, where each answer stands in the place of the
thought above it, so best-of-N and self-consistency compose with thinking unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ttc_core.errors import InputError, LimitError
from ttc_core.inference import GenerationRequest, InferenceClient
from ttc_core.inference.servers import ServerProfile, effective_reasoning, static_profile
from ttc_core.inference.usage import merge_notes
from ttc_core.search.tree import NodeView, TreeView
from ttc_core.settings import EndpointConfig, ReasoningControls, Settings

#: The role of a thought node (its answer is the ``sample`` child below it).
THINK_ROLE = "think"


class ThinkingSpec(BaseModel):
    """A job's extended-thinking option (checked at submission by :func:`check_thinking`)."""

    model_config = ConfigDict(extra="forbid")

    effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        default=None, description="passed as the endpoint's effort control"
    )
    budget_tokens: int | None = Field(
        default=None, ge=1, description="passed as the endpoint's thinking-budget control"
    )
    min_tokens: int = Field(
        default=0, ge=0, description="budget forcing: think at least this long (adds 'Wait')"
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="budget forcing: close the thought at this length"
    )
    force_word: str = Field(default="Wait", min_length=1, max_length=64)
    max_forcings: int = Field(default=8, ge=0, le=256)

    def cap(self, settings: Settings) -> int:
        """The most thinking tokens one thought may have."""
        return self.max_tokens or min(
            settings.default_thinking_tokens, settings.max_thinking_tokens
        )


def check_thinking(spec: ThinkingSpec, endpoint: EndpointConfig, settings: Settings) -> None:
    """Refuse budgets over the server's limit, a minimum over the maximum, and forcing on an
    endpoint whose thinking is not visible; each error names its field."""
    limit = settings.max_thinking_tokens
    for name in ("min_tokens", "max_tokens", "budget_tokens"):
        value = getattr(spec, name)
        if value is not None and value > limit:
            raise LimitError(
                f"thinking.{name}={value} is over this server's limit of {limit}",
                field=f"thinking.{name}",
            )
    if spec.min_tokens > spec.cap(settings):
        raise InputError(
            f"thinking.min_tokens={spec.min_tokens} is above the maximum thinking length "
            f"{spec.cap(settings)}",
            field="thinking.min_tokens",
        )
    known = static_profile(endpoint)
    controls = effective_reasoning(endpoint, known) if known else endpoint.reasoning
    if spec.min_tokens > 0 and not controls.forcing:
        raise InputError(
            "this endpoint's thinking is not visible (no think_open/think_close), so a "
            "minimum thinking length cannot be forced",
            field="thinking.min_tokens",
        )


def thinking_of(job_thinking: Mapping[str, Any] | None) -> ThinkingSpec | None:
    return ThinkingSpec.model_validate(dict(job_thinking)) if job_thinking else None


# ----------------------------------------------------------------------- request shaping


def with_controls(
    request: GenerationRequest,
    spec: ThinkingSpec,
    endpoint: EndpointConfig,
    hidden: int = 0,
    profile: ServerProfile | None = None,
) -> GenerationRequest:
    """``request`` with the job's thinking controls under the endpoint's names, or the
    server's (``profile``: vLLM's ``thinking_token_budget``; chat requests carry them; the
    completions API has no such fields). ``hidden``: thinking tokens the server may spend
    before the visible output (counted in ``max_completion_tokens``)."""
    controls = effective_reasoning(endpoint, profile) if profile else endpoint.reasoning
    extra = dict(request.extra_body or {})
    template = dict(extra.get("chat_template_kwargs") or {})
    if spec.effort and controls.effort_param:
        extra[controls.effort_param] = profile.effort(spec.effort) if profile else spec.effort
    budget = spec.budget_tokens or spec.max_tokens
    if "budget_param" not in endpoint.reasoning.model_fields_set:
        # The server's own budget field (vLLM's thinking_token_budget) only for a budget the
        # job gave the server: ttc enforces its own cap, and vLLM refuses the field unless it
        # runs a reasoning parser, which forcing must not have (it moves the thought).
        budget = spec.budget_tokens
    if budget and controls.budget_param:
        if controls.budget_in == "chat_template_kwargs":
            template[controls.budget_param] = budget
        else:
            extra[controls.budget_param] = budget
    if controls.enable_param:
        template[controls.enable_param] = True
    if template:
        extra["chat_template_kwargs"] = template
    if controls.max_completion_tokens:
        # OpenAI's reasoning models refuse max_tokens: send null and the other field.
        extra["max_completion_tokens"] = request.max_tokens + hidden
        extra["max_tokens"] = None
    return replace(request, extra_body=extra or None)


@dataclass(frozen=True, slots=True)
class Conversation:
    """What every round of a thought continues: the job's question."""

    messages: Sequence[dict[str, Any]]
    question: str


def continuation(
    convo: Conversation,
    assistant_text: str,
    *,
    seed: int | None,
    temperature: float,
    top_p: float,
    max_tokens: int,
    stop: Sequence[str] | None,
) -> GenerationRequest:
    """One sample continuing ``assistant_text`` exactly (``GenerationRequest.continue_text``:
    the client sends it as the server wants, see ``ttc_core.inference.servers``), or the
    question and the text as one prompt for completions endpoints."""
    return GenerationRequest(
        n=1,
        messages=list(convo.messages),
        prompt=convo.question + "\n\n" + assistant_text,
        seed=seed,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=stop,
        continue_text=assistant_text,
    )


def opened(controls: ReasoningControls, thought: str) -> str:
    return f"{controls.think_open}\n{thought}"


def closed(controls: ReasoningControls, thought: str) -> str:
    return f"{controls.think_open}\n{thought}{controls.think_close}{controls.answer_cue}"


def append_word(thought: str, word: str) -> str:
    """The thought with a forced word in place of its end (a space between if needed)."""
    return thought + ("" if not thought or thought[-1].isspace() else " ") + word


# ----------------------------------------------------------------------- the forcing loop


@dataclass(frozen=True, slots=True)
class Thought:
    """One forced thought: its text (forced words included) and what it cost."""

    text: str
    #: Tokens the model generated inside the thought (the server's counts).
    tokens: int
    prompt_tokens: int
    requests: int
    forcings: int
    #: ``model`` (it ended on its own past the minimum), ``cap`` (``max_tokens`` reached)
    #: or ``forcings`` (ended before the minimum with no forcings left).
    closed_by: str
    finish_reason: str | None
    latency_ms: float
    #: What the client fixed in the rounds' output (``meta.sanitized``, ``meta.usage``).
    notes: dict[str, Any] | None = None


async def force_thought(
    client: InferenceClient,
    convo: Conversation,
    spec: ThinkingSpec,
    cap: int,
    *,
    seed: int | None,
    temperature: float,
    top_p: float,
) -> Thought:
    """Think between ``spec.min_tokens`` and ``cap`` tokens (s1 budget forcing): a thought
    the model closes early has its ``think_close`` replaced by the force word and goes on;
    one that reaches ``cap`` is closed by ttc."""
    profile = await client.profile()
    controls = effective_reasoning(client.endpoint, profile)
    text = ""
    tokens = prompt_tokens = requests = forcings = 0
    notes: dict[str, Any] | None = None
    began = time.perf_counter()
    while True:
        request = continuation(
            convo,
            opened(controls, text),
            seed=seed,
            temperature=temperature,
            top_p=top_p,
            max_tokens=cap - tokens,
            stop=[controls.think_close or ""],
        )
        generation = await client.generate(
            with_controls(request, spec, client.endpoint, profile=profile)
        )
        choice = generation.choices[0]
        text += choice.text
        notes = merge_notes(notes, choice.notes)
        tokens += choice.completion_tokens
        prompt_tokens += choice.prompt_tokens
        requests += generation.requests
        if choice.finish_reason == "length" or tokens >= cap:
            closed_by = "cap"
        elif tokens >= spec.min_tokens:
            closed_by = "model"
        elif forcings >= spec.max_forcings:
            closed_by = "forcings"
        else:
            text = append_word(text, spec.force_word)
            forcings += 1
            continue
        return Thought(
            text=text,
            tokens=tokens,
            prompt_tokens=prompt_tokens,
            requests=requests,
            forcings=forcings,
            closed_by=closed_by,
            finish_reason=choice.finish_reason,
            latency_ms=(time.perf_counter() - began) * 1000,
            notes=notes,
        )


def answer_request(
    convo: Conversation,
    controls: ReasoningControls,
    thought: str,
    *,
    seed: int | None,
    temperature: float,
    top_p: float,
    max_tokens: int,
    stop: Sequence[str] | None,
) -> GenerationRequest:
    """The answer after a closed thought."""
    return continuation(
        convo,
        closed(controls, thought),
        seed=seed,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=stop,
    )


# ----------------------------------------------------------------------- planning view


def planning_view(tree: TreeView) -> TreeView:
    """The tree as strategies plan on it: each answer in the place of its thought (the
    thought's parent, depth and child index; its tokens added), the thoughts themselves
    hidden. A thought whose answer is missing stays, as an unanswered sample. Trees with
    no thoughts come back as they are."""
    thoughts = {n.id: n for n in tree.nodes.values() if n.role == THINK_ROLE}
    if not thoughts:
        return tree
    answered = {n.parent_id for n in tree.nodes.values() if n.parent_id in thoughts}
    moved: dict[str, NodeView] = {}
    for node in sorted(tree.nodes.values(), key=lambda n: n.depth):
        if node.id in answered:
            continue
        thought = thoughts.get(node.parent_id or "")
        if thought is not None:
            up = moved.get(thought.parent_id or "", tree.nodes.get(thought.parent_id or ""))
            node = replace(
                node,
                parent_id=thought.parent_id,
                child_index=thought.child_index,
                depth=(up.depth + 1) if up is not None else node.depth - 1,
                completion_tokens=node.completion_tokens + thought.completion_tokens,
            )
        else:
            parent = moved.get(node.parent_id or "")
            if parent is not None:
                node = replace(node, depth=parent.depth + 1)
        moved[node.id] = node
    return TreeView.build(moved.values())


def planning_additions(view: TreeView, added: Sequence[NodeView]) -> list[NodeView] | None:
    """What ``added`` (new nodes as stored, all their parents in ``view`` or in ``added``)
    becomes in the planning view ``view`` of the tree so far, as :func:`planning_view`
    places them: answers in their thoughts' place, depths below them one less. None when
    the view cannot simply grow: an answer to a thought the view already holds (the
    thought must leave it) or a node under a thought already answered; the caller builds
    the view again from the tree then."""
    out: dict[str, NodeView] = {}  # new nodes as placed, by id
    thoughts: dict[str, NodeView] = {}  # new thoughts as placed, by id
    for node in sorted(added, key=lambda n: n.depth):
        parent_id = node.parent_id or ""
        thought = thoughts.pop(parent_id, None)
        if thought is not None:
            # The thought's answer takes its place (and the thought leaves the view).
            del out[thought.id]
            node = replace(
                node,
                parent_id=thought.parent_id,
                child_index=thought.child_index,
                depth=thought.depth,
                completion_tokens=node.completion_tokens + thought.completion_tokens,
            )
        else:
            parent = out.get(parent_id) or view.nodes.get(parent_id)
            if parent is None or parent.role == THINK_ROLE:
                return None
            if node.depth != parent.depth + 1:
                node = replace(node, depth=parent.depth + 1)
        out[node.id] = node
        if node.role == THINK_ROLE:
            thoughts[node.id] = node
    return list(out.values())
