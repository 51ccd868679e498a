"""One settings object, read from the environment (prefix ``TTC_``), shared by the API,
the worker, the CLI and the embedded executor.

``TTC_ENDPOINTS`` is JSON mapping a name to an :class:`EndpointConfig`; jobs name an
endpoint and never carry a URL. API keys are never stored here, only the name of the
environment variable that holds them (``api_key_env``).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ttc_core.errors import InputError
from ttc_core.routing.config import RoutingConfig
from ttc_core.search.auto import DEFAULT_POLICY, AutoPolicy
from ttc_core.search.strategies import check_policy


class ReasoningControls(BaseModel):
    """How an endpoint's model is asked to think, and where ttc sees its thinking (jobs with
    a ``thinking`` option; see ``ttc_core.engine.thinking``). Controls the endpoint lacks (None)
    are simply not sent.

    vLLM with Qwen3: ``{"enable_param": "enable_thinking"}``; an OpenAI reasoning model:
    ``{"effort_param": "reasoning_effort", "max_completion_tokens": true, "think_open":
    null, "think_close": null}``.
    """

    model_config = ConfigDict(extra="forbid")

    #: Body field that carries the job's ``thinking.effort`` (e.g. ``reasoning_effort``).
    effort_param: str | None = Field(default=None, max_length=64)
    #: Field that carries a thinking-token budget (e.g. ``thinking_budget``).
    budget_param: str | None = Field(default=None, max_length=64)
    #: Where ``budget_param`` goes: a top-level body field (what the OpenAI SDK's
    #: ``extra_body`` sends) or inside vLLM's ``chat_template_kwargs``.
    budget_in: Literal["body", "chat_template_kwargs"] = "body"
    #: A ``chat_template_kwargs`` switch set true when a job thinks (``enable_thinking``).
    enable_param: str | None = Field(default=None, max_length=64)
    #: Send the cap as ``max_completion_tokens`` (thinking plus answer), as OpenAI's
    #: reasoning models want, instead of ``max_tokens``.
    max_completion_tokens: bool = False
    #: Delimiters of the model's visible thinking; with both set, ttc does budget forcing
    #: (s1). None: the thinking is hidden and only the controls above are passed.
    think_open: str | None = Field(default="<think>", max_length=64)
    think_close: str | None = Field(default="</think>", max_length=64)
    #: Appended after ``think_close`` when ttc closes a thought to ask for the answer.
    answer_cue: str = Field(default="\n\n", max_length=256)

    @property
    def forcing(self) -> bool:
        """Whether thinking is visible in delimiters, so that it can be forced."""
        return bool(self.think_open and self.think_close)


#: Server software behind an endpoint (``ttc_core.inference.servers``).
ServerKind = Literal["vllm", "sglang", "llamacpp", "openai", "generic"]


class ServerOverrides(BaseModel):
    """Fields of the endpoint's server profile an operator sets by hand (any subset; see
    ``ttc_core.inference.servers.ServerProfile`` for what each means)."""

    model_config = ConfigDict(extra="forbid")

    shares_seed_across_n: bool | None = None
    continuation: Literal["render", "continue_final_message", "prefill", "new_turn"] | None = None
    continue_final_message: bool | None = None
    thinking_budget_param: str | None = Field(default=None, max_length=64)
    thinking_switch: str | None = Field(default=None, max_length=64)
    visible_thinking: bool | None = None
    #: Effort values to send under another name, e.g. ``{"minimal": "low"}``.
    effort_aliases: dict[str, str] | None = None
    pooling: bool | None = None
    classify: bool | None = None


class EndpointConfig(BaseModel):
    """One OpenAI-compatible inference server (or a reward model server). Unknown keys
    are refused (a misspelled limit would otherwise leave the default in force)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="e.g. http://gpu-1:8000/v1")
    #: Several replicas of one server behind this endpoint (same model and software):
    #: requests are spread over them by ``routing``. ``base_url`` is then the first.
    base_urls: list[str] = Field(default_factory=list, max_length=1024)
    #: ``dns``: the host name of each base URL is resolved to all its addresses and each
    #: address is a replica (a Kubernetes headless service, a DNS round-robin name),
    #: resolved again every ``dns_refresh_s``. For plain-HTTP servers inside a network
    #: (requests go to the address; TLS certificates name hosts, not addresses).
    discovery: Literal["static", "dns"] = "static"
    dns_refresh_s: float = Field(default=30.0, gt=0, le=86_400)
    #: Limits of each replica, on top of the endpoint's own (shared across workers too):
    #: in-flight requests, and requests and tokens per minute. None: no per-replica limit.
    replica_max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    replica_requests_per_minute: float | None = Field(default=None, gt=0)
    replica_tokens_per_minute: float | None = Field(default=None, gt=0)
    #: Active health checks: every replica's health route (the server's: ``/health`` on
    #: vLLM, SGLang and llama.cpp; ``/v1/models`` on hosted APIs; or ``health_path``) is
    #: probed this often while the endpoint is in use (0: passive checks only, i.e. failed
    #: requests). ``health_fall`` failures in a row (requests or probes) take a replica
    #: out of rotation; ``health_rise`` good probes in a row bring it back (so does a
    #: successful trial request after ``breaker_cooldown_s``).
    health_interval_s: float = Field(default=2.0, ge=0, le=3600)
    health_path: str | None = Field(default=None, max_length=256, pattern=r"^/")
    health_timeout_s: float = Field(default=2.0, gt=0, le=60)
    health_fall: int = Field(default=3, ge=1, le=1000)
    health_rise: int = Field(default=2, ge=1, le=1000)
    #: How requests are spread over the replicas (``ttc_core.routing``).
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    model: str
    kind: Literal["generate", "reward"] = "generate"
    #: Name of the environment variable holding the API key (never the key itself).
    api_key_env: str | None = None
    #: Maximum in-flight requests against this endpoint, across all worker processes.
    max_concurrency: int = Field(default=64, ge=1, le=100_000)
    timeout_s: float = Field(default=120.0, gt=0)
    price_per_1k_prompt: float = Field(default=0.0, ge=0)
    price_per_1k_completion: float = Field(default=0.0, ge=0)
    #: ``chat`` sends /chat/completions, ``completions`` sends /completions.
    api: Literal["chat", "completions"] = "chat"
    #: Whether the server accepts ``n`` > 1; unknown servers are probed and fall back.
    supports_n: bool = True
    #: Largest ``n`` to put in one request (vLLM accepts large n; hosted APIs cap it).
    max_n_per_request: int = Field(default=16, ge=1, le=1024)
    #: Reward protocol for ``kind=reward``: vLLM's /classify with the conversation (the
    #: server applies the reward model's chat template), /classify with untemplated text
    #: (older vLLM), or a generic JSON endpoint.
    reward_protocol: Literal["vllm_classify", "vllm_classify_text", "json"] = "vllm_classify"
    max_retries: int = Field(default=3, ge=0, le=20)
    #: Optional rate limits across all workers (token buckets with a 10 s burst).
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    #: Failed attempts in a row that open the circuit, and its first cooldown.
    breaker_threshold: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(default=2.0, gt=0, le=600)
    #: Reasoning controls and thinking delimiters (extended thinking, ``thinking`` jobs).
    reasoning: ReasoningControls = Field(default_factory=ReasoningControls)
    #: The server software, which sets how ``n``, seeds, continuation, thinking controls
    #: and reward routes are used; ``auto`` probes the server once per process.
    server: ServerKind | Literal["auto"] = "auto"
    #: Profile fields that replace the server's defaults (``ServerOverrides``).
    server_overrides: ServerOverrides = Field(default_factory=ServerOverrides)

    @model_validator(mode="before")
    @classmethod
    def _first_replica(cls, data: object) -> object:
        """``base_urls`` alone sets ``base_url`` to its first; both must agree."""
        if isinstance(data, dict) and data.get("base_urls"):
            urls = data["base_urls"]
            if isinstance(urls, list) and urls and isinstance(urls[0], str):
                if data.get("base_url") is None:
                    data = {**data, "base_url": urls[0]}
                elif data["base_url"] not in urls:
                    raise ValueError("base_url must be one of base_urls (or left out)")
        return data

    @property
    def replica_urls(self) -> list[str]:
        """The configured base URLs (before DNS discovery), without duplicates."""
        return list(dict.fromkeys(self.base_urls or [self.base_url]))

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


DEFAULT_ENDPOINTS: dict[str, EndpointConfig] = {
    "sim": EndpointConfig(base_url="http://127.0.0.1:8100/v1", model="sim-gsm8k"),
    "sim-rm": EndpointConfig(base_url="http://127.0.0.1:8100", model="sim-rm", kind="reward"),
    "sim-prm": EndpointConfig(base_url="http://127.0.0.1:8100", model="sim-prm", kind="reward"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TTC_", extra="ignore")

    database_url: str = "sqlite:///ttc.db"
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: Redis used for cross-process endpoint limits (defaults to the broker).
    redis_url: str | None = None
    #: ``local`` runs jobs in the API process (embedded mode); ``celery`` enqueues them.
    executor: Literal["local", "celery"] = "local"
    endpoints: Annotated[dict[str, EndpointConfig], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_ENDPOINTS)
    )
    #: Samples per expansion task (the unit of work one worker process holds, all its
    #: requests in flight at once). None sizes batches per step: the step's samples spread
    #: over ``expand_step_batches`` batches of ``expand_batch_min_samples`` to
    #: ``expand_batch_max_samples`` each, so that a large fan-out keeps every worker
    #: process busy without paying a batch's fixed cost (claim, completion) per 128.
    expand_batch_samples: int | None = Field(default=None, ge=1)
    #: How many batches a large step is spread over: the number of worker processes that
    #: should share one job's step (the default worker runs 2).
    expand_step_batches: int = Field(default=2, ge=1)
    expand_batch_min_samples: int = Field(default=128, ge=1)
    expand_batch_max_samples: int = Field(default=1024, ge=1)

    def batch_samples_for(self, step_samples: int) -> int:
        """Samples per batch for a step that plans ``step_samples`` children."""
        if self.expand_batch_samples is not None:
            return self.expand_batch_samples
        spread = -(-step_samples // self.expand_step_batches)
        return max(self.expand_batch_min_samples, min(self.expand_batch_max_samples, spread))

    #: Most nodes of planning views one process keeps between a job's driver steps
    #: (``ttc_core.engine.tree_cache``; least recently used out first), about 0.7 KB each with
    #: MCTS's statistics: the default holds two of the largest jobs ``max_job_nodes``
    #: allows. 0 keeps none, and every step builds its view from the tree.
    tree_cache_nodes: int = Field(default=400_000, ge=0)
    max_n: int = Field(default=4096, ge=1)
    #: Most nodes one job's parameters may plan (step searches multiply n by depth).
    max_job_nodes: int = Field(default=200_000, ge=1)
    #: Difficulty bands of ``strategy: auto`` (JSON, see ``ttc_core.search.auto``); every band's
    #: strategy and parameters are checked at start-up.
    auto_policy: AutoPolicy = Field(default_factory=lambda: DEFAULT_POLICY.model_copy(deep=True))
    #: Most problems in one ``POST /v1/problem-batches``.
    max_batch_problems: int = Field(default=1000, ge=1)
    max_prompt_chars: int = Field(default=200_000, ge=1)
    #: Largest dataset (``POST /v1/datasets``, its JSONL or CSV text) and most rows in one.
    max_dataset_bytes: int = Field(default=20_000_000, ge=1024)
    max_dataset_rows: int = Field(default=20_000, ge=1)
    #: Most jobs one evaluation may plan (problems x arms x grid points x seeds).
    max_eval_jobs: int = Field(default=100_000, ge=1)
    #: Jobs of one evaluation live at once (never more than the tenant's active-job room).
    eval_max_active_jobs: int = Field(default=64, ge=1)
    #: Monte-Carlo permutations per problem for majority@k (``ttc_core.evals.estimators``).
    eval_subsample_draws: int = Field(default=1000, ge=10, le=100_000)
    #: Largest thinking budget a job may ask for (``thinking.max_tokens``, ``min_tokens``,
    #: ``budget_tokens``), and the cap of a thought when a job names none.
    max_thinking_tokens: int = Field(default=131_072, ge=1)
    default_thinking_tokens: int = Field(default=8192, ge=1)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    lease_seconds: float = 60.0
    #: How long a batch claim lasts without a heartbeat (a killed worker's batch is
    #: re-enqueued after this).
    batch_lease_s: float = Field(default=30.0, gt=0)
    #: Attempts of an expansion batch before its missing nodes are marked failed.
    max_batch_attempts: int = Field(default=3, ge=1)
    #: The reaper re-enqueues driver steps and batches that made no progress this long.
    stall_s: float = Field(default=30.0, gt=0)
    reaper_interval_s: float = Field(default=5.0, gt=0)
    task_time_limit_s: int = 900
    #: An unclaimed batch's message counts as lost (and the reaper sends another) after
    #: this long; None: the broker's visibility timeout, after which a delivered message
    #: would have come back by itself (``ttc_core.engine.reaper``).
    batch_message_lost_s: float | None = Field(default=None, gt=0)
    #: How long an expansion task may go on with the next depth's batch itself instead of
    #: sending it through the broker (0: always send). Bounded so one job cannot hold a
    #: worker process for long while other jobs' tasks wait.
    inline_continuation_s: float = Field(default=10.0, ge=0, le=600)
    #: Samples whose scoring takes longer than this are saved unscored first (one write
    #: after scoring when it is quicker; see ``ttc_core.engine.expansion``).
    save_unscored_after_s: float = Field(default=0.05, ge=0, le=60)
    queue_prefix: str = "ttc"
    #: Send Celery task events from the start (Flower enables them itself when it runs).
    celery_events: bool = False
    #: Where the admin UI's nav links to Flower (the Celery monitor).
    flower_url: str = "http://127.0.0.1:5555"
    #: Celery remote control (inspect, enable_events); off: its Redis pub/sub consumer
    #: crashes the worker on a broker restart.
    celery_remote_control: bool = False
    #: Where a worker node serves its processes' Prometheus metrics (0: nowhere); see
    #: ``ttc_worker.telemetry``.
    worker_metrics_port: int = Field(default=9808, ge=0, le=65535)
    worker_metrics_host: str = "0.0.0.0"
    #: Require an API key on every API route (``ttc keys create``). Off, every caller is
    #: an admin of tenant ``default``; ``ttc serve`` then refuses to start unless
    #: ``allow_insecure_no_auth`` says so explicitly.
    auth_enabled: bool = True
    allow_insecure_no_auth: bool = False
    #: How long an ``Idempotency-Key`` of ``POST /v1/jobs`` is remembered.
    idempotency_ttl_s: float = Field(default=86_400.0, gt=0)
    #: Job submissions per tenant and minute (a token bucket holding ten seconds' worth).
    tenant_rate_per_minute: float = Field(default=600.0, gt=0)
    #: Queued, running and paused jobs a tenant may hold at once.
    tenant_max_active_jobs: int = Field(default=200, ge=1)
    #: Deepest ``max_depth`` a step-level job may ask for.
    max_depth: int = Field(default=64, ge=1)
    #: Webhooks (Standard Webhooks). Plain ``http://`` URLs are refused unless this is on.
    webhook_allow_http: bool = False
    #: Host names and CIDRs webhook URLs may reach although not public (local development,
    #: tests): a comma list, e.g. ``127.0.0.1,hooks.internal,10.1.0.0/16``.
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Delay in seconds before each attempt (the first is the initial delivery), each with
    #: +-20% jitter; after the last one a delivery is ``exhausted``. About three days.
    webhook_retry_schedule_s: list[Annotated[float, Field(ge=0, le=604_800)]] = Field(
        default_factory=lambda: [0.0, 5, 300, 1800, 7200, 18000] + [36000.0] * 6,
        min_length=1,
    )
    #: Connect and read timeout of one delivery attempt (a timeout is a failed attempt).
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: How long a rotated-out signing secret still signs (both signatures are sent).
    webhook_secret_grace_s: float = Field(default=86_400.0, ge=0)
    #: Longest retry delay sent as a Celery countdown; later retries are woken by the
    #: reaper (a Redis message held past the visibility timeout would be delivered twice).
    webhook_max_countdown_s: float = Field(default=900.0, ge=0)
    #: The reaper wakes a due delivery whose wake-up message is this many seconds late.
    webhook_reap_after_s: float = Field(default=10.0, gt=0)
    #: Fewest seconds between two ``job.progress`` events of one job.
    webhook_progress_interval_s: float = Field(default=5.0, ge=0)
    #: Time allowed to resolve a webhook host name.
    webhook_resolve_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # --- Web security and limits (API side): UI sessions, CSRF, SSE streams.
    #: How long a UI login lasts (its server-side session; logout ends it sooner).
    ui_session_ttl_s: float = Field(default=43_200.0, gt=0)
    #: Signs the login form's CSRF token. Unset: a random one per API process (then
    #: several API processes behind one address must share it: set it).
    ui_secret: SecretStr | None = None
    #: Open event streams one API key may hold; the next one is a 429.
    sse_max_streams_per_key: int = Field(default=32, ge=1)
    #: A stream with nothing to send for this long ends (a paused job, an idle one); the
    #: client may reconnect with ``Last-Event-ID``.
    sse_idle_s: float = Field(default=600.0, gt=0)
    #: How often an open stream checks that its key is still valid (a revoked key's
    #: streams end within this).
    sse_auth_check_s: float = Field(default=2.0, gt=0, le=60)
    #: How often a job's events are read while streams wait on it (one read per job for
    #: all its streams in this process).
    sse_poll_s: float = Field(default=0.25, gt=0, le=10)

    #: Code sandbox (see README "Security"): ``auto`` = bubblewrap when this host can
    #: give it (else code verification is refused), ``bwrap`` = require it (the API
    #: trusts this without probing), ``unsafe-none`` = plain subprocesses, UNSAFE: only
    #: for deployments whose tenants are all trusted.
    code_sandbox: Literal["auto", "bwrap", "unsafe-none"] = "auto"
    #: Only admin keys may submit ``verifier.tests`` (tenant-written code) when on.
    code_tests_admin_only: bool = False
    #: First host uid of the dedicated per-run sandbox uids (need no passwd entry).
    code_sandbox_uid_base: int = Field(default=61000, ge=1000, le=2**31 - 65536)
    #: Sandboxed runs at once per host (one dedicated uid each).
    code_sandbox_slots: int = Field(default=16, ge=1, le=4096)
    #: Processes and threads one run's whole tree may hold.
    code_sandbox_max_processes: int = Field(default=64, ge=4, le=4096)
    #: Size of a run's private writable /tmp (tmpfs), MB.
    code_sandbox_tmp_mb: int = Field(default=64, ge=1, le=4096)
    #: Largest file a run may write, MB (RLIMIT_FSIZE).
    code_sandbox_max_file_mb: int = Field(default=16, ge=1, le=4096)
    #: Open files per sandboxed process (RLIMIT_NOFILE).
    code_sandbox_max_open_files: int = Field(default=64, ge=16, le=65536)
    #: Interpreter inside the sandbox (None: the worker's own base interpreter if the
    #: sandbox can reach it, else /usr/bin/python3).
    code_sandbox_python: str | None = None
    #: A cgroup per run for the whole tree's memory and processes, where the host lets
    #: the worker create one (else a watchdog summing the run uid's memory).
    code_sandbox_cgroups: bool = True

    #: Expansion cache across jobs (``ttc_core.store.expansion_cache``): a sample already
    #: generated for the same endpoint, model, request and seed is served without a
    #: request. Off: no job reads or writes it, whatever the job asks.
    expansion_cache_enabled: bool = True
    #: ``tenant``: a job sees only its own tenant's entries; ``shared``: every tenant's
    #: (one tenant's samples then serve another's jobs: only where tenants trust each other).
    expansion_cache_scope: Literal["tenant", "shared"] = "tenant"
    #: Entries kept at most; the least recently used go first (the reaper's sweep).
    expansion_cache_max_entries: int = Field(default=1_000_000, ge=1)
    #: Entries unused for this long are dropped (seconds; default a week).
    expansion_cache_max_age_s: float = Field(default=604_800.0, gt=0)
    #: How often the reaper's sweep evicts (seconds).
    expansion_cache_sweep_s: float = Field(default=60.0, gt=0)

    #: Fair dispatch (ttc_worker/fairness.py): driver steps and expansion batches one
    #: tenant may run at once across every worker; a task over the cap goes back to the
    #: queue so other tenants' work runs. Keep it below the workers' total concurrency
    #: (processes) for a tenant's backlog never to stall another's job; 0: off.
    tenant_max_running_tasks: int = Field(default=4, ge=0, le=100_000)
    #: Of those, how many may belong to jobs with a code verifier (sandboxed runs).
    tenant_max_code_tasks: int = Field(default=1, ge=1, le=100_000)
    #: Pause before a task over its tenant's cap puts its message back.
    fair_defer_s: float = Field(default=0.05, ge=0, le=5)

    @field_validator("endpoints", mode="before")
    @classmethod
    def _parse_endpoints(cls, value: object) -> object:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        return value

    @field_validator("webhook_allow_hosts", mode="before")
    @classmethod
    def _parse_allow_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("auto_policy", mode="after")
    @classmethod
    def _check_auto_policy(cls, value: AutoPolicy) -> AutoPolicy:
        try:
            check_policy(value)
        except InputError as exc:
            raise ValueError(f"{exc.field}: {exc}") from None
        return value

    @property
    def limiter_redis_url(self) -> str:
        return self.redis_url or self.broker_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
