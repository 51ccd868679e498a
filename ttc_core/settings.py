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

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class EndpointConfig(BaseModel):
    """One OpenAI-compatible inference server (or a reward model server)."""

    base_url: str = Field(description="e.g. http://gpu-1:8000/v1")
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
    #: Reward protocol for ``kind=reward``: vLLM's /classify or a generic JSON endpoint.
    reward_protocol: Literal["vllm_classify", "json"] = "vllm_classify"
    max_retries: int = Field(default=3, ge=0, le=20)
    #: Optional rate limits across all workers (token buckets with a 10 s burst).
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    #: Failed attempts in a row that open the circuit, and its first cooldown.
    breaker_threshold: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(default=2.0, gt=0, le=600)

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
    #: Samples per expansion task: the unit of work a worker holds in flight at once.
    expand_batch_samples: int = Field(default=128, ge=1)
    max_n: int = Field(default=4096, ge=1)
    #: Most nodes one job's parameters may plan (step searches multiply n by depth).
    max_job_nodes: int = Field(default=200_000, ge=1)
    max_prompt_chars: int = Field(default=200_000, ge=1)
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
    queue_prefix: str = "ttc"
    #: Send Celery task events from the start (Flower enables them itself when it runs).
    celery_events: bool = False
    #: Celery remote control (inspect, enable_events); off: its Redis pub/sub consumer
    #: crashes the worker on a broker restart.
    celery_remote_control: bool = False

    @field_validator("endpoints", mode="before")
    @classmethod
    def _parse_endpoints(cls, value: object) -> object:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        return value

    @property
    def limiter_redis_url(self) -> str:
        return self.redis_url or self.broker_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
