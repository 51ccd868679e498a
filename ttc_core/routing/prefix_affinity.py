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
   SGLang's cache-aware router's approximate radix tree. The other replicas rank by how
   much of the prefix each holds.
2. **Consistent hashing for the rest.** A prefix no one has seen lands on the ring (64
   virtual points per replica) at the hash of its blocks: the same text goes to the same
   replica from every process, and a replica leaving moves only its own share.
3. **Bounded loads** (Mirrokni, Thorup and Zadimoghaddam, 2018). A replica may take a
   request only while its load stays within ``load_factor`` times the mean load counted
   with the request (when none may, the one with the fewest sequences in flight takes it,
   the best-placed first among equals); otherwise the replica holding the next-longest
   part of the prefix is tried, then the next clockwise from the point of its known
   prefix, so a hot prefix (and the siblings that share it) spills over to the same few
   replicas instead of everywhere. The load (``load_measure``) is by default each
   replica's *recent work*: the sequences routed to it, decayed over the last
   ``load_window`` routed (``in_flight``: the sequences in flight now). Beam search keeps
   the best of each depth's children, which cluster on a few replicas by chance, a
   different few at each depth: bounding the sequences in flight moves some of them at
   every depth (each move prefills the path's last steps again elsewhere), while bounding
   the recent work lets a depth pile up where its paths are and moves requests only when a
   replica's share of the work drifts above the bound. Each process bounds its own load;
   the sum over processes then stays within the same factor of the total mean.
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
#: Replicas remembered per block (a prefix spilled over lives on several).
OWNERS_PER_BLOCK = 8


def within_bound(
    load: float, cost: int, total: float, replicas: int, factor: float, slack: float = 0.0
) -> bool:
    """Whether a replica at ``load`` may take ``cost`` more, all replicas together holding
    ``total``: an idle replica always may; otherwise its load afterwards must not exceed
    ``factor`` times the mean load with the request counted (or the mean plus ``slack``)."""
    mean = (total + cost) / replicas
    return load == 0 or load + cost <= max(factor * mean, mean + slack) + 1e-9


class PrefixAffinity:
    def __init__(self, config: RoutingConfig | None = None) -> None:
        self.config = config or RoutingConfig(policy="prefix_affinity")
        #: Block chain hash -> replicas known to hold it (most recent last).
        self._owner: OrderedDict[bytes, list[str]] = OrderedDict()
        self._ring_keys: tuple[str, ...] = ()
        self._ring: list[tuple[int, str]] = []
        #: Recent work per replica (``load_measure: recent``): sequences routed, decayed.
        self._work: dict[str, float] = {}

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
    def matches(self, hashes: Sequence[bytes], keys: Sequence[str]) -> dict[str, int]:
        """How many leading blocks of the request each replica of ``keys`` is known to
        hold (replicas known to hold none are left out)."""
        allowed = set(keys)
        found: dict[str, int] = {}
        for i in range(len(hashes) - 1, -1, -1):
            owners = self._owner.get(hashes[i])
            if not owners:
                continue
            if not found:
                self._owner.move_to_end(hashes[i])  # the longest match is in use
            for owner in owners:
                if owner in allowed and owner not in found:
                    found[owner] = i + 1
            if len(found) == len(allowed):
                break
        return found

    def choose(self, request: RouteRequest, replicas: Sequence[ReplicaView]) -> str:
        keys = [r.key for r in replicas]
        hashes = chain_hashes(request.text, self.config.block_chars)
        held = self.matches(hashes, keys)
        # Candidates: the replicas by how much of the prefix they hold, then in ring order
        # from the longest known prefix (or the whole text, when none is known). Siblings
        # (requests continuing one parent) whose home is full thus spill to the same
        # replica, the one holding most of their shared path, where the first one's
        # prefill serves the rest.
        longest = max(held.values(), default=0)
        at = point(hashes[longest - 1] if longest else hashes[-1] if hashes else request.text)
        ring = {key: i for i, key in enumerate(self._clockwise(at, keys))}
        order = sorted(keys, key=lambda key: (-held.get(key, 0), ring[key]))
        in_flight = {r.key: r.load for r in replicas}
        loads: dict[str, float]
        if self.config.load_measure == "recent":
            loads = self._recent(keys)
        else:
            loads = {key: float(load) for key, load in in_flight.items()}
        total = sum(loads.values())
        factor = self.config.load_factor
        slack = self.config.load_slack if self.config.load_measure == "recent" else 0
        chosen = next(
            (
                k
                for k in order
                if within_bound(loads[k], request.cost, total, len(keys), factor, slack)
            ),
            None,
        )
        if chosen is None:
            chosen = min(order, key=lambda key: in_flight[key])
        self._routed(chosen, request.cost)
        return chosen

    def _recent(self, keys: Sequence[str]) -> dict[str, float]:
        """The recent work of ``keys`` (none yet for a replica never routed to)."""
        return {key: self._work.get(key, 0.0) for key in keys}

    def _routed(self, key: str, cost: int) -> None:
        """Count ``cost`` sequences routed to ``key`` in the recent work (decaying the rest)."""
        if self.config.load_measure != "recent":
            return
        keep = math.exp(-cost / self.config.load_window)
        work = self._work
        for name in work:
            work[name] *= keep
        work[key] = work.get(key, 0.0) + cost

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
        table = self._owner
        for digest in hashes:
            owners = table.get(digest)
            if owners is None:
                table[digest] = [replica]
            else:
                if replica in owners:
                    owners.remove(replica)
                owners.append(replica)
                del owners[:-OWNERS_PER_BLOCK]
                table.move_to_end(digest)
        while len(table) > self.config.table_blocks:
            table.popitem(last=False)


register("prefix_affinity", PrefixAffinity)
