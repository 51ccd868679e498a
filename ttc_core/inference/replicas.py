"""Where an endpoint's replicas are: its configured base URLs, or what their host names
resolve to (``discovery: dns``), resolved again every ``dns_refresh_s``.

A replica is named by its base URL. With DNS discovery each address of a name becomes
``scheme://address:port/path`` (IPv6 in brackets), so a name that resolves to three pods
is three replicas; a name that fails to resolve keeps its last known addresses (and the
name itself until it has resolved once), so a DNS outage never empties a fleet.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

#: ``(host, port) -> addresses``; the default asks the system resolver.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def with_host(url: str, address: str) -> str:
    """``url`` with its host replaced by ``address`` (port, path and scheme kept)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{address}]" if ":" in address else address
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, parts.query, ""))


class ReplicaSource:
    """The current replica URLs of one endpoint."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        dns: bool = False,
        refresh_s: float = 30.0,
        resolver: Resolver = system_resolver,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.urls = list(dict.fromkeys(urls))
        self.dns = dns
        self.refresh_s = refresh_s
        self._resolver = resolver
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._known: dict[str, list[str]] = {url: [url] for url in self.urls}
        self._next = 0.0
        self._lock: asyncio.Lock | None = None

    def current(self) -> list[str]:
        return list(dict.fromkeys(u for url in self.urls for u in self._known[url]))

    def due(self) -> bool:
        return self.dns and self._clock() >= self._next

    async def refresh(self) -> list[str]:
        """Resolve again if due (one resolution at a time); the current URLs."""
        if not self.due():
            return self.current()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.due():
                self._next = self._clock() + self.refresh_s
                for url in self.urls:
                    self._known[url] = await self._resolve(url)
        return self.current()

    async def _resolve(self, url: str) -> list[str]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not host or is_address(host):
            return [url]
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await self._resolver(host, port)
        except (OSError, UnicodeError) as exc:
            log.warning(
                "replicas of %s: cannot resolve %s (%s); keeping %s",
                url,
                host,
                exc,
                self._known[url],
            )
            return self._known[url]
        if not addresses:
            return self._known[url]
        return sorted(with_host(url, a) for a in addresses)
