"""What the step loop needs from its host: the store, settings, pooled HTTP, limits.

Each executor builds one :class:`EngineContext` per process (the Celery worker after
fork, the local executor on its loop) and keeps it: creating an HTTP client costs ~17 ms
of CPU, so never one per task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from ttc_core.db import Database
from ttc_core.errors import UnknownNameError
from ttc_core.inference import ConcurrencyLimiter, InferenceClient, LocalLimiter
from ttc_core.settings import Settings


def make_http_client(max_connections: int = 512) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=128)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120.0, connect=10.0))


@dataclass
class EngineContext:
    settings: Settings
    db: Database
    http: httpx.AsyncClient
    limiter: ConcurrencyLimiter = field(default_factory=LocalLimiter)
    _clients: dict[str, InferenceClient] = field(default_factory=dict)

    def inference(self, endpoint_name: str) -> InferenceClient:
        client = self._clients.get(endpoint_name)
        if client is None:
            endpoint = self.settings.endpoints.get(endpoint_name)
            if endpoint is None:
                raise UnknownNameError(f"endpoint {endpoint_name!r} is not configured")
            client = InferenceClient(endpoint_name, endpoint, self.http, self.limiter)
            self._clients[endpoint_name] = client
        return client

    async def aclose(self) -> None:
        await self.http.aclose()
        closer = getattr(self.limiter, "aclose", None)
        if closer is not None:
            await closer()
