"""OpenAI-compatible inference: the client, retry policy and concurrency limits."""

from ttc_core.inference.client import (
    Choice,
    Generation,
    GenerationRequest,
    InferenceClient,
)
from ttc_core.inference.limiter import ConcurrencyLimiter, LocalLimiter, RedisLimiter

__all__ = [
    "Choice",
    "ConcurrencyLimiter",
    "Generation",
    "GenerationRequest",
    "InferenceClient",
    "LocalLimiter",
    "RedisLimiter",
]
