"""The routing seam: what a policy sees, what it answers, and the registry of policies.

A policy is an object with ``choose`` (pick a replica for a request) and ``observe``
(learn from an answered request; affinity policies remember where prefixes now live)::

    class Random:
        def __init__(self, config: RoutingConfig) -> None:
            self._rng = random.Random(0)

        def choose(self, request: RouteRequest, replicas: Sequence[ReplicaView]) -> str:
            return self._rng.choice(replicas).key

        def observe(self, request: RouteRequest, replica: str, completions: Sequence[str]) -> None:
            pass

    register("random", Random)

``replicas`` holds only the replicas that may take a request now (healthy, or a recovering
one due a trial), never none; the fleet decides what to do when every replica is down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ttc_core.routing.config import RoutingConfig


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """One inference request as routing sees it."""

    #: The prompt as the server will see it (a rendered prompt, or the chat messages
    #: serialized in order), so that a request continuing another's text extends it.
    text: str
    #: Sequences the request asks for (its ``n``): a replica's load is counted in these.
    cost: int = 1


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """A replica that may take the request, with this process's load on it."""

    #: Stable name of the replica (its base URL).
    key: str
    #: Sequences this process has in flight on the replica.
    load: int = 0


class RoutingPolicy(Protocol):
    def choose(self, request: RouteRequest, replicas: Sequence[ReplicaView]) -> str:
        """The key of the replica (one of ``replicas``, never empty) for ``request``."""

    def observe(self, request: RouteRequest, replica: str, completions: Sequence[str]) -> None:
        """``replica`` answered ``request`` with ``completions`` (its cache now holds the
        prompt and, on vLLM and SGLang, the generated text too)."""


PolicyFactory = Callable[["RoutingConfig"], RoutingPolicy]

#: Routing policies by name (``routing.policy`` of an endpoint).
POLICIES: dict[str, PolicyFactory] = {}


def register(name: str, factory: PolicyFactory) -> None:
    """Make a policy available under ``name`` (a later registration replaces it)."""
    POLICIES[name] = factory


def make_policy(config: RoutingConfig) -> RoutingPolicy:
    """A fresh policy of ``config.policy`` (one per endpoint and process)."""
    return POLICIES[config.policy](config)
