from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer

FAST = SimConfig(base_latency_s=0.001, per_token_latency_s=0.0, reward_latency_s=0.0)


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    """One fast server for the HTTP tests (per-request behaviour via model-name overrides)."""
    with SimServer(FAST) as server:
        yield server


@pytest.fixture
def client(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=10) as c:
        yield c
