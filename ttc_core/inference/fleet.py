"""An endpoint's replicas as one fleet: which replica takes each request, and which are in
rotation.

The fleet keeps, per process, each replica's health (:mod:`ttc_core.inference.health`),
the sequences this process has in flight on it (the load the routing policy balances),
and the endpoint's routing policy (:mod:`ttc_core.routing`). The client asks it for a
replica around each attempt (:meth:`Fleet.route`) and reports the outcome; a retry after
a failure goes to another replica. Limits stay with the client and the limiter: the
endpoint's, and each replica's under ``<endpoint>@<replica URL>``.

Active checks run on demand: while the endpoint is in use, each replica's health route is
probed every ``health_interval_s`` (a task on the running loop, never two at once for a
replica), so a dead replica is found before many requests fail on it and a recovered one
comes back without a request risking it. An endpoint with one static URL is no fleet:
nothing is probed and every request goes to its one server, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ttc_core.inference.failures import describe_transport_error
from ttc_core.inference.health import Health, ReplicaHealth
from ttc_core.inference.replicas import ReplicaSource, Resolver, system_resolver
from ttc_core.observability import metrics
from ttc_core.routing import ReplicaView, RouteRequest, make_policy
from ttc_core.settings import EndpointConfig

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Replica:
    url: str
    health: ReplicaHealth
    #: Sequences this process has in flight on the replica.
    load: int = 0
    next_probe: float = 0.0
    probe: asyncio.Task[bool] | None = field(default=None, repr=False)

    @property
    def root(self) -> str:
        """The server's root URL (``/v1`` removed)."""
        return self.url.rstrip("/").removesuffix("/v1")


@dataclass(eq=False)
class Attempt:
    """One request's stay on one replica."""

    replica: Replica
    #: The request is the half-open trial of a recovering replica.
    trial: bool = False
    settled: bool = False


def request_text(body: dict[str, Any]) -> str:
    """What a request's prompt is as routing compares it: the prompt text, or the chat
    messages in order (role and content), so that a continuation extends its parent."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    parts = []
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            content = message.get("content")
            text = content if isinstance(content, str) else repr(content)
            parts.append(f"{message.get('role')}\x1f{text}")
    return "\x1e".join(parts)


class Fleet:
    def __init__(
        self,
        name: str,
        endpoint: EndpointConfig,
        http: httpx.AsyncClient,
        headers: dict[str, str] | None = None,
        *,
        resolver: Resolver = system_resolver,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self._http = http
        self._headers = headers or {}
        self._clock = clock
        self.source = ReplicaSource(
            endpoint.replica_urls,
            dns=endpoint.discovery == "dns",
            refresh_s=endpoint.dns_refresh_s,
            resolver=resolver,
            clock=clock,
        )
        self.policy = make_policy(endpoint.routing)
        self._replicas: dict[str, Replica] = {}
        self._apply(self.source.current())
        #: Path of the servers' health route (set from the server profile).
        self.health_path = endpoint.health_path or "/health"
        self._probes: set[asyncio.Task[bool]] = set()

    # ------------------------------------------------------------------ membership
    @property
    def replicas(self) -> list[Replica]:
        return list(self._replicas.values())

    @property
    def is_fleet(self) -> bool:
        """More than one replica, or replicas found by DNS (which may become several)."""
        return len(self._replicas) > 1 or self.source.dns

    def _apply(self, urls: Sequence[str]) -> None:
        current = dict.fromkeys(urls)
        for url in list(self._replicas):
            if url not in current:
                log.info("endpoint %s: replica %s left", self.name, url)
                del self._replicas[url]
        for url in current:
            if url not in self._replicas:
                ep = self.endpoint
                self._replicas[url] = Replica(
                    url,
                    ReplicaHealth(
                        fall=ep.health_fall,
                        rise=ep.health_rise,
                        cooldown_s=ep.breaker_cooldown_s,
                        clock=self._clock,
                    ),
                )
                metrics.replica_state(self.name, url, True)

    async def sync(self) -> None:
        """Resolve the replicas again where DNS discovery is due."""
        if self.source.due():
            self._apply(await self.source.refresh())

    def any_url(self) -> str:
        """A replica for a request whose placement does not matter (rendering a chat)."""
        routable = [r for r in self._replicas.values() if r.health.routable()]
        return (routable or self.replicas)[0].url

    def all_down(self) -> bool:
        return not any(r.health.state is Health.UP for r in self._replicas.values())

    # --------------------------------------------------------------------- routing
    def choose(self, text: str, cost: int, exclude: Sequence[str] = ()) -> Replica:
        """The replica for a request (``exclude``: replicas this request failed on)."""
        replicas = self.replicas
        if len(replicas) == 1:
            return replicas[0]
        routable = [r for r in replicas if r.health.routable()]
        candidates = [r for r in routable if r.url not in exclude] or routable
        if not candidates:
            # Every replica is down: the one back soonest (the endpoint's breaker waits).
            return min(replicas, key=lambda r: (r.health.down_until, r.load))
        views = [ReplicaView(r.url, r.load) for r in candidates]
        key = self.policy.choose(RouteRequest(text, cost), views)
        return self._replicas[key]

    @contextlib.asynccontextmanager
    async def route(
        self, text: str, cost: int, exclude: Sequence[str] = ()
    ) -> AsyncIterator[Attempt]:
        """Hold a replica for one attempt of a request costing ``cost`` sequences."""
        await self.sync()
        self._schedule_probes()
        replica = self.choose(text, cost, exclude)
        attempt = Attempt(replica, trial=self.is_fleet and replica.health.begin())
        replica.load += cost
        try:
            yield attempt
        finally:
            replica.load -= cost
            if attempt.trial and not attempt.settled:
                replica.health.end_trial()

    def succeeded(self, attempt: Attempt) -> None:
        attempt.settled = True
        health = attempt.replica.health
        was = health.state
        health.request_succeeded(attempt.trial)
        if was is not Health.UP and health.state is Health.UP:
            self._came_back(attempt.replica, "a trial request succeeded")

    def failed(self, attempt: Attempt, reason: str) -> None:
        """A server-side failure (transport, 5xx, malformed answer) on the replica."""
        attempt.settled = True
        if not self.is_fleet:
            return
        if attempt.replica.health.request_failed(reason, attempt.trial):
            self._went_down(attempt.replica)

    def observe(self, text: str, cost: int, attempt: Attempt, completions: Sequence[str]) -> None:
        if self.is_fleet:
            self.policy.observe(RouteRequest(text, cost), attempt.replica.url, completions)

    # -------------------------------------------------------------------- probes
    def _schedule_probes(self) -> None:
        interval = self.endpoint.health_interval_s
        if interval <= 0 or not self.is_fleet:
            return
        now = self._clock()
        for replica in self._replicas.values():
            if now < replica.next_probe or (replica.probe is not None and not replica.probe.done()):
                continue
            replica.next_probe = now + interval
            task = asyncio.get_running_loop().create_task(self.probe(replica))
            replica.probe = task
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)

    async def probe(self, replica: Replica) -> bool:
        """GET the replica's health route once and count the answer; True when healthy."""
        url = replica.root + self.health_path
        timeout = self.endpoint.health_timeout_s
        try:
            resp = await self._http.get(url, headers=self._headers, timeout=timeout)
        except httpx.HTTPError as exc:
            reason = describe_transport_error(exc, url, timeout).replace("POST ", "GET ", 1)
            ok = False
        else:
            ok = resp.status_code == 200
            reason = f"GET {url} answered {resp.status_code}"
        health = replica.health
        if ok:
            if health.probe_succeeded():
                self._came_back(replica, f"{health.rise} health probes answered 200")
        elif health.probe_failed(reason):
            self._went_down(replica)
        return ok

    async def aclose(self) -> None:
        for task in list(self._probes):
            task.cancel()
        await asyncio.gather(*self._probes, return_exceptions=True)

    # ----------------------------------------------------------------- reporting
    def _went_down(self, replica: Replica) -> None:
        health = replica.health
        log.warning(
            "endpoint %s: replica %s out of rotation for %.1fs: %s",
            self.name,
            replica.url,
            health.cooldown_s,
            health.reason,
        )
        metrics.replica_state(self.name, replica.url, False)

    def _came_back(self, replica: Replica, why: str) -> None:
        log.info("endpoint %s: replica %s back in rotation (%s)", self.name, replica.url, why)
        metrics.replica_state(self.name, replica.url, True)
