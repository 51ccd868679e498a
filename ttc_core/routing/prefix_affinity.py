"""``prefix_affinity``: a request goes to the replica that already holds its prefix, with
bounded loads so that no replica goes hot.

Tree search re-sends each path's whole prefix at every depth, and a server's prefix cache
(vLLM's automatic prefix caching, SGLang's RadixAttention) only pays for it on the replica
that computed it. So:

1. **Where prefixes live.** After a replica answers, the chain hashes of the prompt's whole
   blocks, and of the prompt followed by each completion, are recorded as living there (an
   LRU table of ``table_blocks``). A request's *home* is the replica of its longest
   recorded prefix: a request that continues a path goes where the path was generated,
   and siblings (children of one request) all go where their parent's text is, like
   SGLang's cache-aware router's approximate radix tree.
2. **Consistent hashing for the rest.** A prefix no one has seen lands on the ring (64
   virtual points per replica) at the hash of its blocks: the same text goes to the same
   replica from every process, and a replica leaving moves only its own share.
3. **Bounded loads** (Mirrokni, Thorup and Zadimoghaddam, 2018). A replica may take a
   request only while its load (sequences in flight) stays within ``load_factor`` times
   the mean load counted with the request, rounded up to whole requests; otherwise the
   next replica clockwise from the request's point is tried, so a hot prefix spills over
   to the same few replicas instead of everywhere. Each process bounds its own in-flight
   load; the sum over processes then stays within the same factor of the total mean.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Sequence

from ttc_core.routing.base import ReplicaView, RouteRequest, register
from ttc_core.routing.blocks import chain_hashes, point
from ttc_core.routing.config import RoutingConfig

#: Virtual points per replica on the ring (smooths each replica's share of new prefixes).
VNODES = 64


def within_bound(load: int, cost: int, total: int, replicas: int, factor: float) -> bool:
    """Whether a replica at ``load`` may take ``cost`` more, the others together holding
    ``total - load``: an idle replica always may; otherwise its load afterwards must not
    exceed ``factor`` times the mean with the request, rounded up to whole requests."""
    if load == 0:
        return True
    cost = max(1, cost)
    bound = factor * (total + cost) / replicas
    return load + cost <= math.ceil(bound / cost - 1e-9) * cost


class PrefixAffinity:
    def __init__(self, config: RoutingConfig | None = None) -> None:
        self.config = config or RoutingConfig(policy="prefix_affinity")
        self._owner: OrderedDict[bytes, str] = OrderedDict()
        self._ring_keys: tuple[str, ...] = ()
        self._ring: list[tuple[int, str]] = []

    # -------------------------------------------------------------------- the ring
    def _ring_for(self, keys: Sequence[str]) -> list[tuple[int, str]]:
        ordered = tuple(sorted(keys))
        if ordered != self._ring_keys:
            self._ring_keys = ordered
            points = ((point(f"{key}#{v}"), key) for key in ordered for v in range(VNODES))
            self._ring = sorted(points)
        return self._ring

    def _clockwise(self, at: int, keys: Sequence[str]) -> list[str]:
        """Distinct replicas in ring order from position ``at``."""
        ring = self._ring_for(keys)
        start = bisect.bisect_left(ring, (at, ""))
        seen: list[str] = []
        for i in range(len(ring)):
            key = ring[(start + i) % len(ring)][1]
            if key not in seen:
                seen.append(key)
                if len(seen) == len(keys):
                    break
        return seen

    # ------------------------------------------------------------------ the policy
    def home(self, hashes: Sequence[bytes], keys: Sequence[str]) -> str | None:
        """The replica holding the longest recorded prefix among ``keys``, or None."""
        allowed = set(keys)
        for digest in reversed(hashes):
            owner = self._owner.get(digest)
            if owner is not None and owner in allowed:
                self._owner.move_to_end(digest)
                return owner
        return None

    def choose(self, request: RouteRequest, replicas: Sequence[ReplicaView]) -> str:
        keys = [r.key for r in replicas]
        hashes = chain_hashes(request.text, self.config.block_chars)
        at = point(hashes[-1] if hashes else request.text)
        order = self._clockwise(at, keys)
        home = self.home(hashes, keys)
        if home is not None:
            order.remove(home)
            order.insert(0, home)
        loads = {r.key: r.load for r in replicas}
        total = sum(loads.values())
        for key in order:
            if within_bound(loads[key], request.cost, total, len(keys), self.config.load_factor):
                return key
        return min(order, key=lambda key: loads[key])

    def observe(self, request: RouteRequest, replica: str, completions: Sequence[str]) -> None:
        size = self.config.block_chars
        prompt = chain_hashes(request.text, size)
        self._remember(prompt, replica)
        whole = len(prompt) * size  # completions continue the chain from the last whole block
        seed = prompt[-1] if prompt else b""
        for text in completions:
            if text:
                self._remember(chain_hashes(request.text + text, size, whole, seed), replica)

    def _remember(self, hashes: Sequence[bytes], replica: str) -> None:
        owner = self._owner
        for digest in hashes:
            owner[digest] = replica
            owner.move_to_end(digest)
        while len(owner) > self.config.table_blocks:
            owner.popitem(last=False)


register("prefix_affinity", PrefixAffinity)
