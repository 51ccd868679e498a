"""One expansion batch's work: build each request from the node's role and its path,
generate, decide terminality, score (verifier and step scorer), and return the rows.

Roles (``ttc_core.search.strategies.base.ROLES``):

- ``sample``: a whole answer to the question.
- ``step`` / ``lookahead``: one reasoning step continuing the parent's path exactly
  (``GenerationRequest.continue_text``). On vLLM the chat is rendered once by the server's
  own template and the path appended untouched, on the completions API, so a template that
  trims messages (Llama 3) cannot cut the trailing delimiter; other chat servers get the
  path as a final assistant message (``continue_final_message``); completions endpoints
  get question and path as one prompt. Generation stops at the step delimiter.
- ``critique``: a review of the parent attempt (with the verifier's feedback if asked).
- ``revise``: a new attempt from the grandparent attempt and the parent critique.
"""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ttc_core.engine import cached_generation
from ttc_core.engine.runtime import EngineContext
from ttc_core.engine.thinking import (
    THINK_ROLE,
    Conversation,
    ThinkingSpec,
    answer_request,
    force_thought,
    thinking_of,
    with_controls,
)
from ttc_core.errors import InferenceError
from ttc_core.inference import Choice, GenerationRequest, ledger
from ttc_core.inference.client import gather_or_cancel, render_messages
from ttc_core.inference.servers import effective_reasoning
from ttc_core.observability import metrics
from ttc_core.scoring import PartialSolution, build_scorer, parse_scorer_spec
from ttc_core.search import prompts
from ttc_core.search.strategies import SamplingParams, get_strategy
from ttc_core.search.strategies.states import state_key
from ttc_core.search.tree import node_id_for
from ttc_core.store.models import Job, Node, NodeStatus, utcnow
from ttc_core.store.queries import PathNode
from ttc_core.verifiers import Candidate, build_verifier, parse_verifier_spec
from ttc_core.verifiers.patterns import AnswerPattern

log = logging.getLogger(__name__)

STEP_ROLES = ("step", "lookahead")
ATTEMPT_ROLES = ("sample", "revise")
_FINAL_ANSWER = re.compile(r"\\boxed\{|ANSWER:|[Tt]he final answer is")


@dataclass(frozen=True, slots=True)
class Run:
    """Contiguous missing children of one parent: one generation request (with n)."""

    parent_id: str
    parent_depth: int
    first_index: int
    k: int
    role: str = "sample"
    temperature: float | None = None


@dataclass
class ParentContext:
    """What a child's prompt needs from its parent and the path above it."""

    steps: list[str] = field(default_factory=list)  # step texts from the root down
    #: The parent's position in the tree (child indices from the root): seeds derive from
    #: it and the job's seed, so the same seed grows the same tree in any job.
    address: str = ""
    attempt: str | None = None  # the attempt to critique or revise
    critique: str | None = None
    feedback: str | None = None


def parent_context(path: Sequence[PathNode]) -> ParentContext:
    """What children of ``path[-1]`` need from the path above them."""
    parent = path[-1]
    ctx = ParentContext(
        address="/".join(str(n.child_index) for n in path[1:]),
        steps=[n.text for n in path if n.role in STEP_ROLES],
    )
    if parent.role in ATTEMPT_ROLES:
        ctx.attempt = parent.text
        ctx.feedback = (parent.meta or {}).get("feedback")
    elif parent.role == "critique" and len(path) >= 2:
        ctx.attempt = path[-2].text
        ctx.critique = parent.text
    return ctx


def child_seed(job: Job, parent: ParentContext, child_index: int) -> int:
    return (job.seed + zlib.crc32(parent.address.encode())) % (2**31) + child_index


def question_of(job: Job) -> str:
    return job.prompt if job.prompt is not None else render_messages(job.messages)


def base_messages(job: Job) -> list[dict[str, Any]]:
    return list(job.messages or [{"role": "user", "content": job.prompt or ""}])


def build_request(
    job: Job, params: SamplingParams, run: Run, parent: ParentContext, seed: int
) -> GenerationRequest:
    delimiter = params.step_delimiter()
    common: dict[str, Any] = {
        "n": run.k,
        "seed": seed,
        "temperature": params.temperature if run.temperature is None else run.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
    }
    question = question_of(job)
    if run.role in STEP_ROLES:
        prefix = "".join(step + delimiter for step in parent.steps)
        return GenerationRequest(
            messages=base_messages(job),
            prompt=question + delimiter + prefix,
            stop=[delimiter, *(params.stop or [])],
            continue_text=prefix or None,
            **common,
        )
    if run.role == "critique":
        text = prompts.critique_prompt(
            question,
            parent.attempt or "",
            parent.feedback if params.shows_feedback() else None,
        )
        return GenerationRequest(
            messages=[{"role": "user", "content": text}], prompt=text, **common
        )
    if run.role == "revise":
        text = prompts.revise_prompt(question, parent.attempt or "", parent.critique or "")
        return GenerationRequest(
            messages=[{"role": "user", "content": text}], prompt=text, **common
        )
    return GenerationRequest(
        messages=base_messages(job), prompt=job.prompt, stop=params.stop, **common
    )


class SaveRows(Protocol):
    """Stores node rows (and the request records they reference) at once."""

    def __call__(
        self,
        rows: list[dict[str, Any]],
        requests: Sequence[dict[str, Any]] = (),
        cache_entries: Sequence[dict[str, Any]] = (),
    ) -> Awaitable[None]: ...


@dataclass
class NewNode:
    run: Run
    choice: Choice
    parent: ParentContext
    row: dict[str, Any]

    @property
    def full_text(self) -> str:
        """The answer this node stands for: its path of steps, or its own text."""
        if self.run.role in STEP_ROLES:
            return prompts.STEP_DELIMITER.join([*self.parent.steps, self.choice.text])
        return self.choice.text


def split_runs(runs: list[Run], per_request: int) -> list[Run]:
    """One run per request: each request's samples are saved as soon as they are scored,
    so a worker killed mid-batch loses only what was still in flight."""
    out: list[Run] = []
    for run in runs:
        for start in range(0, run.k, per_request):
            k = min(per_request, run.k - start)
            out.append(
                Run(
                    run.parent_id,
                    run.parent_depth,
                    run.first_index + start,
                    k,
                    run.role,
                    run.temperature,
                )
            )
    return out


async def generate_rows(
    ctx: EngineContext,
    job: Job,
    batch_id: str,
    runs: list[Run],
    parents: dict[str, ParentContext],
    save: SaveRows,
    save_scores: Callable[[list[dict[str, Any]]], Awaitable[None]],
) -> int:
    """Generate and score a batch's children: each request's rows go to ``save`` as soon
    as they are generated and to ``save_scores`` once scored; returns the requests made."""
    strategy = get_strategy(job.strategy)
    params = strategy.parse_params(job.params)
    client = ctx.inference(job.endpoint, job.model)
    per_request = client.endpoint.max_n_per_request if client.endpoint.supports_n else 1
    thinking = thinking_of(job.thinking)
    profile = await client.profile()
    controls = effective_reasoning(client.endpoint, profile)

    def thinks_first(run: Run) -> bool:
        return thinking is not None and run.role == "sample" and controls.forcing

    def prepare(run: Run) -> tuple[GenerationRequest, dict[str, Any]]:
        seed = child_seed(job, parents[run.parent_id], run.first_index)
        request = build_request(job, params, run, parents[run.parent_id], seed)
        if thinking is not None:  # the endpoint's reasoning controls, where it has them
            hidden = 0 if controls.forcing else thinking.cap(ctx.settings)
            request = with_controls(request, thinking, client.endpoint, hidden, profile)
        return request, cached_generation.request_record(job, client, request)

    todo = split_runs(runs, per_request)
    prepared = {i: prepare(run) for i, run in enumerate(todo) if not thinks_first(run)}
    # The expansion cache, looked up once for the whole batch (same requests, same seeds).
    cache = await cached_generation.open_batch(
        ctx, job, client, [(req, record["fingerprint"]) for req, record in prepared.values()]
    )

    async def run_one(i: int, run: Run) -> int:
        if i not in prepared:
            assert thinking is not None
            return await _think_then_answer(
                ctx, job, params, run, parents[run.parent_id], batch_id, thinking, save, save_scores
            )
        # Each request's samples are saved the moment they arrive (so a crash never pays
        # for them twice), then scored while the batch's other requests still generate.
        request, record = prepared[i]
        try:
            served = await cached_generation.generate(client, request, record["fingerprint"], cache)
        except InferenceError as exc:
            log.warning("job %s batch %s: generation failed: %s", job.id, batch_id, exc)
            rows = failed_rows(job, batch_id, run, str(exc))
            for row in rows:
                row["request_id"] = record["id"]
            await save(rows, [record])
            return 0
        fresh = []
        for choice, cached in zip(served.generation.choices, served.cached, strict=True):
            row = base_row(job, batch_id, run, choice)
            row.update(request_id=record["id"], cached=cached)
            fresh.append(NewNode(run, choice, parents[run.parent_id], row))
        await _score_and_save(ctx, job, params, fresh, save, save_scores, [record], served.entries)
        return served.generation.requests

    counts = await gather_or_cancel([run_one(i, r) for i, r in enumerate(todo)])
    return sum(counts)


async def _score_and_save(
    ctx: EngineContext,
    job: Job,
    params: SamplingParams,
    fresh: list[NewNode],
    save: SaveRows,
    save_scores: Callable[[list[dict[str, Any]]], Awaitable[None]],
    requests: Sequence[dict[str, Any]] = (),
    cache_entries: Sequence[dict[str, Any]] = (),
) -> None:
    """Score fresh samples and store them: in one write when scoring is quick, else
    saved as ``generated`` first (once ``save_unscored_after_s`` has passed), so that a
    worker that dies during slow scoring (an LLM judge, a busy reward model) loses only
    the scoring, never the generation. A quick scorer (a PRM, math-verify) thus costs one
    round trip to the database per request instead of two; a kill inside that short
    window regenerates those samples, which were still in flight."""
    unscored = [{**node.row, "meta": dict(node.row["meta"])} for node in fresh]
    scoring = asyncio.ensure_future(score(ctx, job, params, fresh))
    try:
        done, _ = await asyncio.wait({scoring}, timeout=ctx.settings.save_unscored_after_s)
    except BaseException:
        scoring.cancel()
        raise
    if scoring in done and scoring.exception() is None:
        await save([node.row for node in fresh], requests, cache_entries)
        return
    await save(unscored, requests, cache_entries)  # slow or failed scoring: keep what was paid
    await scoring
    await save_scores([node.row for node in fresh])


async def _think_then_answer(
    ctx: EngineContext,
    job: Job,
    params: SamplingParams,
    run: Run,
    parent: ParentContext,
    batch_id: str,
    thinking: ThinkingSpec,
    save: SaveRows,
    save_scores: Callable[[list[dict[str, Any]]], Awaitable[None]],
) -> int:
    """Each sample of ``run`` thinks first under budget forcing (``ttc_core.engine.thinking``),
    then answers: a ``think`` node in the sample's place and the answer as its child. The
    thought is saved before the answer is asked for, so a crash never pays for it twice
    (the sample then stays unanswered). Returns the requests made."""
    client = ctx.inference(job.endpoint, job.model)
    convo = Conversation(base_messages(job), question_of(job))
    temperature = params.temperature if run.temperature is None else run.temperature

    async def one(i: int) -> int:
        index = run.first_index + i
        seed = child_seed(job, parent, run.first_index) + i
        sample_run = Run(run.parent_id, run.parent_depth, index, 1, run.role)
        try:
            thought = await force_thought(
                client,
                convo,
                thinking,
                thinking.cap(ctx.settings),
                seed=seed,
                temperature=temperature,
                top_p=params.top_p,
            )
        except InferenceError as exc:
            log.warning("job %s batch %s: thinking failed: %s", job.id, batch_id, exc)
            await save(failed_rows(job, batch_id, sample_run, str(exc)))
            return 0
        think_row = base_row(
            job,
            batch_id,
            Run(run.parent_id, run.parent_depth, index, 1, THINK_ROLE),
            Choice(
                0,
                thought.text,
                thought.finish_reason,
                thought.prompt_tokens,
                thought.tokens,
                thought.latency_ms,
                seed,
                thought.notes,
            ),
        )
        think_row["status"] = NodeStatus.done
        think_row["meta"].update(forcings=thought.forcings, closed_by=thought.closed_by)
        await save([think_row])
        answer_run = Run(think_row["id"], run.parent_depth + 1, 0, 1, run.role)
        request = answer_request(
            convo,
            effective_reasoning(client.endpoint, await client.profile()),
            thought.text,
            seed=seed,
            temperature=temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop=params.stop,
        )
        try:
            generation = await client.generate(
                with_controls(request, thinking, client.endpoint, profile=await client.profile())
            )
        except InferenceError as exc:
            log.warning("job %s batch %s: answer failed: %s", job.id, batch_id, exc)
            await save(failed_rows(job, batch_id, answer_run, str(exc)))
            return thought.requests
        choice = generation.choices[0]
        row = base_row(job, batch_id, answer_run, choice)
        row["meta"].update(thinking_tokens=thought.tokens, forcings=thought.forcings)
        here = ParentContext(address=f"{parent.address}/{index}".lstrip("/"))
        fresh = [NewNode(answer_run, choice, here, row)]
        await _score_and_save(ctx, job, params, fresh, save, save_scores)
        return thought.requests + generation.requests

    return sum(await gather_or_cancel([one(i) for i in range(run.k)]))


def base_row(job: Job, batch_id: str, run: Run, choice: Choice) -> dict[str, Any]:
    child_index = run.first_index + choice.index
    return {
        "id": node_id_for(job.id, run.parent_id, child_index),
        "job_id": job.id,
        "parent_id": run.parent_id,
        "batch_id": batch_id,
        "depth": run.parent_depth + 1,
        "child_index": child_index,
        "role": run.role,
        "text": choice.text,
        "status": NodeStatus.generated,
        "is_terminal": run.role in ATTEMPT_ROLES,
        "answer": None,
        "score": None,
        "step_score": None,
        "correct": None,
        "prompt_tokens": choice.prompt_tokens,
        "completion_tokens": choice.completion_tokens,
        "finish_reason": choice.finish_reason,
        "latency_ms": choice.latency_ms,
        "seed": choice.seed,
        # What the client fixed in the output (NUL replaced, usage estimated), visibly.
        "meta": {key: dict(value) for key, value in (choice.notes or {}).items()},
        "request_id": None,
        "cached": False,
        "created_at": utcnow(),
    }


def is_final_step(text: str, pattern: AnswerPattern | None) -> bool:
    if not text.strip():
        return True  # the model ended the solution: nothing left to continue
    if pattern is not None and pattern.search(text):
        return True
    return bool(_FINAL_ANSWER.search(text))


async def score(ctx: EngineContext, job: Job, params: SamplingParams, fresh: list[NewNode]) -> None:
    """Terminality, verifier verdicts and step scores, written into each row (which
    becomes ``done``)."""
    for node in fresh:
        node.row["status"] = NodeStatus.done
        if node.run.role in STEP_ROLES:  # lets a search merge paths reaching one state
            node.row["meta"]["state"] = state_key([*node.parent.steps, node.choice.text])
    spec = parse_verifier_spec(job.verifier)
    # The tenant's pattern, compiled by RE2 (linear time; see ttc_core.verifiers.patterns).
    pattern = spec.compiled_pattern() if getattr(spec, "pattern", None) else None
    max_depth = params.depth_limit()
    for node in fresh:
        if node.run.role in STEP_ROLES:
            node.row["is_terminal"] = is_final_step(node.choice.text, pattern) or (
                max_depth is not None and node.row["depth"] >= max_depth
            )
    to_verify = [n for n in fresh if n.row["is_terminal"]]
    if to_verify:
        verifier = build_verifier(
            spec, reference=job.reference, endpoints=ctx.settings.endpoints, http_client=ctx.http
        )
        question = question_of(job)
        candidates = [Candidate(question, n.full_text) for n in to_verify]
        verdicts = await metrics.scorer_call(spec.kind, verifier.verify(candidates))
        for node, verdict in zip(to_verify, verdicts, strict=True):
            node.row.update(answer=verdict.answer, score=verdict.score, correct=verdict.correct)
            if verdict.feedback:
                node.row["meta"]["feedback"] = verdict.feedback
            node.row["meta"]["verifier_score"] = verdict.score
            if verdict.score_error:
                _unscorable(node, getattr(spec, "endpoint", spec.kind), verdict.score_error)
    if job.prm:
        await _step_scores(ctx, job, params, [n for n in fresh if n.run.role != "critique"])


async def _step_scores(
    ctx: EngineContext, job: Job, params: SamplingParams, nodes: list[NewNode]
) -> None:
    if not nodes:
        return
    spec = parse_scorer_spec(job.prm)
    scorer = build_scorer(
        spec,
        endpoints=ctx.settings.endpoints,
        http_client=ctx.http,
        inference=ctx.inference,
        seed=job.seed,
    )
    delimiter = params.step_delimiter()
    question = question_of(job)
    items = []
    for node in nodes:
        if node.run.role in STEP_ROLES:
            steps = [*node.parent.steps, node.choice.text]
        else:
            steps = [s for s in node.choice.text.split(delimiter) if s.strip()] or [""]
        items.append(PartialSolution(question, tuple(steps)))
    results = await metrics.scorer_call(spec.kind, scorer.score(items))
    for node, result in zip(nodes, results, strict=True):
        node.row["step_score"] = result.last
        node.row["score"] = result.aggregate(spec.aggregation)
        if result.note:
            _unscorable(node, spec.endpoint, result.note)


def _unscorable(node: NewNode, endpoint: str, reason: str) -> None:
    """A node scored 0 because its scorer's reply could not be read: the reason on the
    node, and in the attempt's ledger for the batch's ``endpoint_trouble`` event."""
    node.row["meta"]["score_error"] = reason[:500]
    ledger.note_unscorable(endpoint, node.row["id"], reason)


def failed_rows(job: Job, batch_id: str, run: Run, error: str) -> list[dict[str, Any]]:
    rows = []
    for i in range(run.k):
        placeholder = Choice(i, "", None, 0, 0, 0.0, None)
        row = base_row(job, batch_id, run, placeholder)
        row.update(
            status=NodeStatus.failed,
            is_terminal=False,
            latency_ms=None,
            meta={"error": error[:500]},
        )
        rows.append(row)
    return rows


SCORE_COLUMNS = ("status", "is_terminal", "answer", "score", "step_score", "correct", "meta")


async def rescore(
    ctx: EngineContext,
    job: Job,
    nodes: list[Node],
    parents: dict[str, ParentContext],
    save_scores: Callable[[list[dict[str, Any]]], Awaitable[None]],
) -> None:
    """Score nodes that were saved but not scored when their worker died."""
    params = get_strategy(job.strategy).parse_params(job.params)
    fresh = []
    for node in nodes:
        run = Run(node.parent_id or "", node.depth - 1, node.child_index, 1, node.role)
        choice = Choice(0, node.text, node.finish_reason, 0, 0, node.latency_ms or 0.0, node.seed)
        row = {"id": node.id, "depth": node.depth, "meta": dict(node.meta or {})}
        row.update({c: getattr(node, c) for c in SCORE_COLUMNS if c != "meta"})
        fresh.append(NewNode(run, choice, parents[run.parent_id], row))
    await score(ctx, job, params, fresh)
    await save_scores([node.row for node in fresh])
