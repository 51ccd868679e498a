"""A circuit breaker per endpoint (per process): after ``threshold`` failed attempts in
a row the circuit opens and requests wait out a cooldown instead of hammering a dead
server; the first request after it is the half-open probe (success closes the circuit,
failure re-opens it with a doubled cooldown, up to ``max_cooldown_s``)."""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        cooldown_s: float = 2.0,
        max_cooldown_s: float = 60.0,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.base_cooldown_s = cooldown_s
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.failures = 0
        self.open_until = 0.0
        #: Times the circuit opened (for metrics and events).
        self.openings = 0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    async def wait_closed(self) -> None:
        """Wait until the circuit lets a request through."""
        while (delay := self.open_until - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    def record_success(self) -> None:
        self.failures = 0
        self.cooldown_s = self.base_cooldown_s

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold and not self.is_open:
            self.open_until = time.monotonic() + self.cooldown_s
            self.openings += 1
            log.warning(
                "endpoint %s: %d failures in a row; circuit open for %.1fs",
                self.name,
                self.failures,
                self.cooldown_s,
            )
            self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
