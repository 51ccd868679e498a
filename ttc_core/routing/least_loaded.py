"""``least_loaded``: each request to the replica with the fewest sequences in flight from
this process (ties taken in turn), a baseline that balances but ignores caches."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ttc_core.routing.base import ReplicaView, RouteRequest, register
from ttc_core.routing.config import RoutingConfig


class LeastLoaded:
    def __init__(self, config: RoutingConfig | None = None) -> None:
        self._turn = itertools.count()

    def choose(self, request: RouteRequest, replicas: Sequence[ReplicaView]) -> str:
        ordered = sorted(replicas, key=lambda r: r.key)
        start = next(self._turn) % len(ordered)
        rotated = ordered[start:] + ordered[:start]
        return min(rotated, key=lambda r: r.load).key

    def observe(self, request: RouteRequest, replica: str, completions: Sequence[str]) -> None:
        pass


register("least_loaded", LeastLoaded)
