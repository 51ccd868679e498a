"""Choosing the replica of an endpoint that serves each inference request.

One seam: a :class:`~ttc_core.routing.base.RoutingPolicy` is given the request (its
rendered prompt and how many sequences it asks for) and the replicas that may take it
(with the load this process has in flight on each), and names one. Policies are kept in
one registry by name (:func:`~ttc_core.routing.base.register`); an endpoint chooses its
policy in its ``routing`` settings (:class:`~ttc_core.routing.config.RoutingConfig`).

Built in: ``round_robin`` and ``least_loaded`` (the baselines) and ``prefix_affinity``
(requests that continue a prefix go to the replica that holds it, with bounded loads).
No I/O here: the policies are pure and tested in microseconds.
"""

from ttc_core.routing import least_loaded, prefix_affinity, round_robin
from ttc_core.routing.base import (
    POLICIES,
    ReplicaView,
    RouteRequest,
    RoutingPolicy,
    make_policy,
    register,
)
from ttc_core.routing.config import RoutingConfig

__all__ = [
    "POLICIES",
    "ReplicaView",
    "RouteRequest",
    "RoutingConfig",
    "RoutingPolicy",
    "least_loaded",
    "make_policy",
    "prefix_affinity",
    "register",
    "round_robin",
]
