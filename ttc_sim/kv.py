"""What a request's prompt costs the simulated GPU: prefix-cache lookups, prefill time, and
decode speed under continuous batching (see "Prefix cache and prefill" in
:mod:`ttc_sim.config`).

One :class:`KVEngine` per server: its :class:`~ttc_sim.prefix_cache.PrefixCache` is the
server's (a replica's cache is its own), and in ``continuous`` batching its prefills run
one at a time, as they share the GPU's compute.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .config import SimConfig
from .prefix_cache import PrefixCache
from .tokens import split_tokens


class KVEngine:
    def __init__(self, config: SimConfig) -> None:
        self.cache = PrefixCache(config.prefix_cache_blocks, config.block_size)
        self._prefill_lock: asyncio.Lock | None = None

    async def prefill(
        self, texts: Sequence[str], prompt_tokens: Sequence[int], cfg: SimConfig
    ) -> int:
        """Look up and prefill each prompt (its text as the model sees it, its token
        count as usage reports it); the prompt tokens found cached, all prompts together.
        Returns after the prefill time, with the prompts' blocks cached."""
        token_lists = [split_tokens(text) for text in texts]
        if cfg.batching != "continuous":
            return await self._prefill(token_lists, prompt_tokens, cfg)
        if self._prefill_lock is None:
            self._prefill_lock = asyncio.Lock()
        # One prefill at a time on the GPU; each looks the cache up when its turn comes,
        # so a request queued behind another with the same prefix finds it computed.
        async with self._prefill_lock:
            return await self._prefill(token_lists, prompt_tokens, cfg)

    async def _prefill(
        self, token_lists: Sequence[list[str]], prompt_tokens: Sequence[int], cfg: SimConfig
    ) -> int:
        cached = 0
        uncached = 0
        for tokens, count in zip(token_lists, prompt_tokens, strict=True):
            # Computed: the tokens of the text past its cached blocks (at least one). The
            # usage count may hold template tokens the text lacks; they are part of the
            # prefix, and count as cached with it.
            computed = min(count, max(1, len(tokens) - self.cache.cached_tokens(tokens)))
            cached += count - computed
            uncached += computed
        seconds = cfg.prefill_latency_per_token_s * uncached
        if seconds > 0:
            await asyncio.sleep(seconds)
        for tokens in token_lists:
            self.cache.insert(tokens)
        return cached

    def generated(self, text: str, completions: Sequence[str]) -> None:
        """Cache the blocks of ``text`` followed by each completion (generated KV), all but
        its last token: as in vLLM, the last token sampled is never fed back, so its KV is
        never computed (a block it would have filled is not cached)."""
        for completion in completions:
            self.cache.insert(split_tokens(text + completion)[:-1])

    @staticmethod
    def per_token_s(cfg: SimConfig, active_sequences: int) -> float:
        """Seconds per generated token of one sequence with ``active_sequences`` running."""
        if cfg.batching == "continuous":
            return cfg.per_token_latency_s * (1 + cfg.decode_slowdown * active_sequences)
        return cfg.per_token_latency_s
