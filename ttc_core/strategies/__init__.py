"""Strategies by name. One module per strategy; the registry is the only dispatch."""

from __future__ import annotations

from typing import Any

from ttc_core.strategies.base import (
    Expand,
    Plan,
    SamplingParams,
    Selection,
    Strategy,
)
from ttc_core.strategies.best_of_n import BestOfN, BestOfNParams
from ttc_core.strategies.self_consistency import SelfConsistency, SelfConsistencyParams

STRATEGIES: dict[str, Strategy[Any]] = {s.name: s for s in (BestOfN(), SelfConsistency())}


def get_strategy(name: str) -> Strategy[Any]:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)}") from None


__all__ = [
    "STRATEGIES",
    "BestOfN",
    "BestOfNParams",
    "Expand",
    "Plan",
    "SamplingParams",
    "Selection",
    "SelfConsistency",
    "SelfConsistencyParams",
    "Strategy",
    "get_strategy",
]
