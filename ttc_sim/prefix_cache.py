"""The simulated server's prefix cache: an LRU of KV blocks, as vLLM's automatic prefix
caching keeps them.

A prompt is cut into blocks of ``block_size`` tokens; block i is keyed by a hash of blocks
0..i (a chain), so a block is reused only after the very same prefix. A request reuses
its longest run of cached leading blocks and prefills the rest; as in vLLM, at least the
last prompt token is always computed (a prompt cached whole recomputes its last block).
Once prefilled, the prompt's whole blocks are cached; once generated, so are the whole
blocks of the prompt followed by each completion (vLLM caches generated blocks too), so a
request that continues a generated path finds it. The cache holds ``capacity`` blocks;
the least recently used go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class PrefixCache:
    def __init__(self, capacity: int, block_size: int) -> None:
        self.capacity = capacity
        self.block_size = block_size
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def _chain(self, tokens: Sequence[str]) -> list[int]:
        size = self.block_size
        keys: list[int] = []
        previous = 0
        for start in range(0, len(tokens) - size + 1, size):
            previous = hash((previous, tuple(tokens[start : start + size])))
            keys.append(previous)
        return keys

    def cached_tokens(self, tokens: Sequence[str]) -> int:
        """Leading tokens of ``tokens`` found cached (whole blocks; the blocks found are
        touched), never all of them."""
        if self.capacity <= 0 or not tokens:
            return 0
        hits = 0
        for key in self._chain(tokens):
            if key not in self._blocks:
                break
            self._blocks.move_to_end(key)
            hits += 1
        usable = (len(tokens) - 1) // self.block_size  # the last token is always computed
        return min(hits, usable) * self.block_size

    def insert(self, tokens: Sequence[str]) -> None:
        """Cache the whole blocks of ``tokens`` (evicting the least recently used)."""
        if self.capacity <= 0:
            return
        blocks = self._blocks
        for key in self._chain(tokens):
            blocks[key] = None
            blocks.move_to_end(key)
        while len(blocks) > self.capacity:
            blocks.popitem(last=False)

    def clear(self) -> None:
        self._blocks.clear()
