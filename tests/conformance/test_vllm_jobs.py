"""Every strategy against real vLLM (its CPU build) with the tiny random-weight models, run
by the engine's local executor on Postgres (where NUL bytes once failed jobs).

Each job must end ``succeeded``, or ``failed`` with a reason in words (never a database
error or an exception's repr), and its usage must be what vLLM says it generated:
completion tokens equal to the growth of vLLM's ``vllm:generation_tokens_total`` counters on
the generators, prompt tokens and requests equal to what the responses reported (vLLM's
prompt counter counts a prompt once per sample of ``n``, responses once per request; both
are checked). The step-search jobs run on the trimming (Llama 3) template and must grow
multi-step paths with every step's delimiter reaching the server; ``think`` runs on the
Qwen3 template and must force and answer without an empty think block in any prompt.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conformance.servers import MODEL_NAMES, VllmFleet
from tests.helpers import fresh_postgres
from ttc_core.engine.runtime import EngineContext
from ttc_core.executor import run_job
from ttc_core.inference.servers import forget_probes
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Job, JobStatus, Node

QUESTION = "Natalia sold 48 clips in April and half as many in May. How many in all?"
GENERATION_ROUTES = ("/v1/completions", "/v1/chat/completions")
#: Reward-model routes (vLLM's pooling and classification): a job counts their calls too.
REWARD_ROUTES = ("/pooling", "/classify")
#: An exception's repr in a job's error means the cause was not put in words.
EXCEPTION_REPR = re.compile(r"\b\w+(Error|Exception)\(")
DATABASE_ERRORS = re.compile(r"DataError|IntegrityError|OperationalError|ProgrammingError|NUL")


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


@dataclass
class Traffic:
    """What ttc sent to the generators and what they answered (recorded at the HTTP layer)."""

    generators: set[str]
    requests: list[dict[str, Any]] = field(default_factory=list)  # generation bodies sent
    responses: int = 0  # generation requests answered 200
    prompt_tokens: int = 0  # as the responses reported them
    completion_tokens: int = 0
    prompt_tokens_per_sample: int = 0  # prompt tokens x choices: vLLM's prompt counter
    other: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # reward, render
    #: Reward-model calls answered 200 (``/pooling``, ``/classify``) and the tokens they
    #: reported: a job's usage counts them too.
    reward_responses: int = 0
    reward_prompt_tokens: int = 0

    async def on_response(self, response: httpx.Response) -> None:
        url = response.request.url
        sent = _json(response.request.content)
        if f"{url.host}:{url.port}" not in self.generators or url.path not in GENERATION_ROUTES:
            self.other.append((url.path, sent))
            if url.path in REWARD_ROUTES and response.status_code == 200:
                await response.aread()
                usage = _json(response.content).get("usage") or {}
                self.reward_responses += 1
                self.reward_prompt_tokens += int(usage.get("prompt_tokens") or 0)
            return
        self.requests.append(sent)
        if response.status_code != 200:
            return
        await response.aread()
        usage = _json(response.content).get("usage") or {}
        choices = len(_json(response.content).get("choices") or [])
        self.responses += 1
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)
        self.prompt_tokens_per_sample += int(usage.get("prompt_tokens") or 0) * choices


def _json(content: bytes) -> dict[str, Any]:
    try:
        value = json.loads(content or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def counters(fleet: VllmFleet) -> dict[str, float]:
    """vLLM's token counters summed over the generators."""
    totals = {"prompt": 0.0, "generation": 0.0}
    for server in (fleet.llama3, fleet.qwen3):
        text = httpx.get(server.url + "/metrics", timeout=10).text
        for line in text.splitlines():
            for key, name in (
                ("prompt", "vllm:prompt_tokens_total"),
                ("generation", "vllm:generation_tokens_total"),
            ):
                if line.startswith(name + "{") or line.startswith(name + " "):
                    totals[key] += float(line.rsplit(" ", 1)[1])
    return totals


def settings_for(database_url: str, fleet: VllmFleet) -> Settings:
    common: dict[str, Any] = {"max_concurrency": 8, "timeout_s": 120.0, "max_retries": 1}
    return Settings(
        database_url=database_url,
        endpoints={
            # server "auto": the probe must find vLLM by itself
            "llama3": EndpointConfig(
                base_url=fleet.llama3.base_url, model=MODEL_NAMES["llama3"], **common
            ),
            "qwen3": EndpointConfig(
                base_url=fleet.qwen3.base_url, model=MODEL_NAMES["qwen3"], **common
            ),
            "prm": EndpointConfig(
                base_url=fleet.prm.url, model=MODEL_NAMES["prm"], kind="reward", **common
            ),
            "orm": EndpointConfig(
                base_url=fleet.orm.url, model=MODEL_NAMES["orm"], kind="reward", **common
            ),
        },
    )


@dataclass
class Outcome:
    job: Job
    nodes: list[Node]
    traffic: Traffic
    generated: float  # vLLM's generation counter growth
    prompted: float  # vLLM's prompt counter growth


def run(database_url: str, fleet: VllmFleet, spec: dict[str, Any]) -> Outcome:
    settings = settings_for(database_url, fleet)
    generators = {f"127.0.0.1:{s.port}" for s in (fleet.llama3, fleet.qwen3)}
    traffic = Traffic(generators)
    before = counters(fleet)
    forget_probes()

    async def go() -> str:
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(120.0, connect=10.0),
            event_hooks={"response": [traffic.on_response]},
        )
        ctx = EngineContext(settings=settings, db=Database(settings.database_url), http=http)
        try:
            with ctx.db.transaction() as session:
                job_id = create_job(session, JobSpec.model_validate(spec), settings, tenant="t").id
            await run_job(ctx, job_id)
            return job_id
        finally:
            await ctx.aclose()

    job_id = asyncio.run(go())
    after = counters(fleet)
    db = Database(database_url)
    with db.transaction() as session:
        job = session.get(Job, job_id)
        assert job is not None
        nodes = list(session.scalars(select(Node).where(Node.job_id == job_id)))
        session.expunge_all()
    return Outcome(
        job,
        nodes,
        traffic,
        after["generation"] - before["generation"],
        after["prompt"] - before["prompt"],
    )


def check_ended_well(out: Outcome) -> None:
    """``succeeded``, or ``failed`` saying why in words; and usage exactly vLLM's."""
    job = out.job
    assert job.status in (JobStatus.succeeded, JobStatus.failed), job.status
    if job.status == JobStatus.failed:
        assert job.error and len(job.error) > 10, job.error
        assert not EXCEPTION_REPR.search(job.error), job.error
        assert not DATABASE_ERRORS.search(job.error), job.error
    for node in out.nodes:
        error = (node.meta or {}).get("error") or ""
        assert not DATABASE_ERRORS.search(error), error
    t = out.traffic
    assert t.responses > 0
    # what vLLM generated, by its own counters and by its responses
    assert job.completion_tokens == out.generated == t.completion_tokens
    # the job's prompt tokens and requests: the generators' and the reward models' calls
    assert job.prompt_tokens == t.prompt_tokens + t.reward_prompt_tokens
    assert out.prompted == t.prompt_tokens_per_sample
    assert job.requests == t.responses + t.reward_responses


def paths(out: Outcome) -> list[list[Node]]:
    """Root-to-leaf step paths of a step-search job."""
    by_id = {n.id: n for n in out.nodes}
    parents = {n.parent_id for n in out.nodes}
    found = []
    for leaf in (n for n in out.nodes if n.id not in parents and n.role == "step"):
        path, node = [], leaf
        while node is not None and node.role == "step":
            path.append(node)
            node = by_id.get(node.parent_id or "")
        found.append(path[::-1])
    return found


def check_steps_reach_the_server(out: Outcome, delimiter: str = "\n\n") -> None:
    """Multi-step paths, and every continuation prompt ends with its path's delimiter (a
    trimming template under ``continue_final_message`` would have cut it)."""
    longest = max((len(p) for p in paths(out)), default=0)
    assert longest >= 2, f"no path grew past one step ({len(out.nodes)} nodes)"
    continued = [r for r in out.traffic.requests if "prompt" in r]
    assert continued, "no continuation went to /v1/completions"
    for body in continued:
        if body["prompt"].endswith("<|start_header_id|>assistant<|end_header_id|>\n\n"):
            continue  # the first step: nothing to continue yet
        assert body["prompt"].endswith(delimiter), body["prompt"][-80:]
    assert not any(r.get("continue_final_message") for r in out.traffic.requests)


def step_job(strategy: str, params: dict[str, Any], prm: dict[str, Any]) -> dict[str, Any]:
    return {
        "strategy": strategy,
        "endpoint": "llama3",
        "prompt": QUESTION,
        "reference": "72",
        "params": {"max_tokens": 12, "temperature": 1.0, **params},
        "prm": prm,
        "seed": 7,
        "budget": {"max_tokens": 20_000},
    }


PRM = {"kind": "prm", "endpoint": "prm"}


def test_best_of_n_with_the_classify_reward_model(database_url: str, vllm_fleet: VllmFleet) -> None:
    out = run(
        database_url,
        vllm_fleet,
        {
            "strategy": "best_of_n",
            "endpoint": "llama3",
            "prompt": QUESTION,
            "params": {"n": 6, "max_tokens": 24},
            "verifier": {"kind": "reward_model", "endpoint": "orm"},
            "seed": 3,
        },
    )
    check_ended_well(out)
    assert out.job.status == JobStatus.succeeded, out.job.error
    samples = [n for n in out.nodes if n.role == "sample"]
    assert len(samples) == 6
    assert all(n.score is not None and 0.0 <= n.score <= 1.0 for n in samples)
    assert len({n.text for n in samples}) == 6  # n > 1 with a seed: distinct samples
    # the reward model got each exchange as a conversation, templated by its server
    classify = [body for path, body in out.traffic.other if path == "/classify"]
    assert len(classify) == 6
    assert all(b["messages"][0] == {"role": "user", "content": QUESTION} for b in classify)


def test_self_consistency(database_url: str, vllm_fleet: VllmFleet) -> None:
    out = run(
        database_url,
        vllm_fleet,
        {
            "strategy": "self_consistency",
            "endpoint": "llama3",
            "prompt": QUESTION,
            "reference": "72",
            "params": {"n": 6, "max_tokens": 24},
            "seed": 4,
        },
    )
    check_ended_well(out)


def test_beam_search_with_the_pooling_prm_on_the_trimming_template(
    database_url: str, vllm_fleet: VllmFleet
) -> None:
    out = run(
        database_url,
        vllm_fleet,
        step_job("beam_search", {"n": 4, "beam_width": 2, "max_depth": 3}, PRM),
    )
    check_ended_well(out)
    check_steps_reach_the_server(out)
    scored = [n for n in out.nodes if n.role == "step" and n.step_score is not None]
    assert scored, "the PRM scored no step"


def test_dvts_with_the_pooling_prm(database_url: str, vllm_fleet: VllmFleet) -> None:
    out = run(
        database_url,
        vllm_fleet,
        step_job("dvts", {"n": 4, "beam_width": 2, "max_depth": 3}, PRM),
    )
    check_ended_well(out)
    check_steps_reach_the_server(out)


def test_mcts_with_the_pooling_prm(database_url: str, vllm_fleet: VllmFleet) -> None:
    out = run(
        database_url,
        vllm_fleet,
        step_job("mcts", {"simulations": 6, "k": 2, "parallel": 2, "max_depth": 3}, PRM),
    )
    check_ended_well(out)
    check_steps_reach_the_server(out)


def test_tot_bfs_with_an_llm_judge(database_url: str, vllm_fleet: VllmFleet) -> None:
    judge = {"kind": "llm_judge", "endpoint": "llama3", "samples": 2}
    out = run(
        database_url,
        vllm_fleet,
        step_job("tot_bfs", {"k": 2, "breadth": 2, "max_depth": 2}, judge),
    )
    check_ended_well(out)
    # the judge's calls are generation requests too, and counted
    assert any("messages" in r and "Judgement" in str(r["messages"]) for r in out.traffic.requests)


def test_refine(database_url: str, vllm_fleet: VllmFleet) -> None:
    out = run(
        database_url,
        vllm_fleet,
        {
            "strategy": "refine",
            "endpoint": "llama3",
            "prompt": QUESTION,
            "reference": "72",
            "params": {"rounds": 1, "n": 1, "max_tokens": 24},
            "seed": 5,
        },
    )
    check_ended_well(out)
    assert {"sample", "critique"} <= {n.role for n in out.nodes}


def test_think_with_budget_forcing_on_the_qwen3_template(
    database_url: str, vllm_fleet: VllmFleet
) -> None:
    # The tiny model closes a thought early often, not always (its ``</think>`` is only
    # made likely): a few seeds, until one thought is forced; every job must end well.
    for seed in range(6, 14):
        out = run(
            database_url,
            vllm_fleet,
            {
                "strategy": "think",
                "endpoint": "qwen3",
                "prompt": QUESTION,
                "reference": "72",
                "params": {"max_tokens": 16},
                "thinking": {"min_tokens": 24, "max_tokens": 48, "max_forcings": 3},
                "seed": seed,
            },
        )
        check_ended_well(out)
        # The thought is generated up to the model's own close: the stop string is sent.
        assert any("</think>" in (r.get("stop") or []) for r in out.traffic.requests), [
            r.get("stop") for r in out.traffic.requests
        ]
        forced = [n for n in out.nodes if n.role == "think" and (n.meta or {}).get("forcings")]
        if forced:
            break
    thoughts = [n for n in out.nodes if n.role == "think"]
    answers = [
        n for n in out.nodes if n.role == "sample" and n.parent_id in {t.id for t in thoughts}
    ]
    assert thoughts and answers, [
        (n.role, n.status, (n.meta or {}).get("error")) for n in out.nodes
    ]
    assert any((t.meta or {}).get("forcings", 0) > 0 for t in thoughts), [
        (t.completion_tokens, t.meta, t.text[-80:]) for t in thoughts
    ]  # no seed of the eight had its thought closed before the minimum
    assert all(a.status == "done" for a in answers)
    prompts = [r["prompt"] for r in out.traffic.requests if "prompt" in r]
    assert prompts, "the thought was not continued on the completions API"
    for prompt in prompts:
        # never the empty think block Qwen3's template adds when it re-renders the turn
        assert "<think>\n\n</think>" not in prompt, prompt[-200:]
        assert prompt.count("<think>") == 1, prompt[-200:]
    assert any("Wait" in p for p in prompts)  # the forced word went to the server
    assert out.job.thinking_tokens > 0
