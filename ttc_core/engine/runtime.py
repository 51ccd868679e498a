"""What the step loop needs from its host: the store, settings, pooled HTTP, limits.

Each executor builds one :class:`EngineContext` per process (the Celery worker after
fork, the local executor on its loop) and keeps it: creating an HTTP client costs ~17 ms
of CPU, so never one per task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from httpx_aiohttp import AiohttpTransport

from ttc_core.engine.tree_cache import TreeCache
from ttc_core.errors import UnknownNameError
from ttc_core.inference import ConcurrencyLimiter, InferenceClient, LocalLimiter
from ttc_core.settings import Settings
from ttc_core.store.db import Database


def make_http_client(max_connections: int = 512) -> httpx.AsyncClient:
    """The pooled client for inference, reward and scorer calls.

    httpx's own connection pool costs ~12 ms of CPU per request once tens of connections
    are open (encode/httpx#3215; measured 11.9 ms vs 0.6 ms here), which on a 2-core
    worker caps it at ~100 requests/s. The aiohttp transport keeps httpx's API (and its
    test transports) with aiohttp's pool underneath.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=128)
    return httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits), timeout=httpx.Timeout(120.0, connect=10.0)
    )


@dataclass
class EngineContext:
    settings: Settings
    db: Database
    http: httpx.AsyncClient
    limiter: ConcurrencyLimiter = field(default_factory=LocalLimiter)
    _clients: dict[str, InferenceClient] = field(default_factory=dict)
    #: Jobs' planning views kept between driver steps (``ttc_core.engine.tree_cache``).
    trees: TreeCache = field(init=False)

    def __post_init__(self) -> None:
        self.trees = TreeCache(self.settings.tree_cache_nodes)

    def inference(self, endpoint_name: str, model: str | None = None) -> InferenceClient:
        """The client of an endpoint; ``model``: another model than the endpoint's own on
        the same servers (a replay onto another model), with the endpoint's limits."""
        key = endpoint_name if model is None else f"{endpoint_name}\0{model}"
        client = self._clients.get(key)
        if client is None:
            endpoint = self.settings.endpoints.get(endpoint_name)
            if endpoint is None:
                raise UnknownNameError(f"endpoint {endpoint_name!r} is not configured")
            if model is not None:
                endpoint = endpoint.model_copy(update={"model": model})
            client = InferenceClient(endpoint_name, endpoint, self.http, self.limiter)
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        await self.http.aclose()
        closer = getattr(self.limiter, "aclose", None)
        if closer is not None:
            await closer()
