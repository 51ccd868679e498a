"""``round_robin``: each request to the next replica in turn (a baseline)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ttc_core.routing.base import ReplicaView, RouteRequest, register
from ttc_core.routing.config import RoutingConfig


class RoundRobin:
    def __init__(self, config: RoutingConfig | None = None) -> None:
        self._turn = itertools.count()

    def choose(self, request: RouteRequest, replicas: Sequence[ReplicaView]) -> str:
        ordered = sorted(r.key for r in replicas)
        return ordered[next(self._turn) % len(ordered)]

    def observe(self, request: RouteRequest, replica: str, completions: Sequence[str]) -> None:
        pass


register("round_robin", RoundRobin)
