from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.core.inference._support import sim_config
from ttc_sim.runner import SimServer


@pytest.fixture(scope="module")
def clean_sim() -> Iterator[SimServer]:
    """A fault-free server: the reference texts for a given seed."""
    with SimServer(sim_config()) as server:
        yield server
