"""Strategies by name. One module per strategy; the registry is the only dispatch."""

from __future__ import annotations

from typing import Any

from ttc_core.strategies.auto import Auto, AutoParams
from ttc_core.strategies.base import (
    Expand,
    Plan,
    SamplingParams,
    Selection,
    Strategy,
)
from ttc_core.strategies.beam_search import BeamSearch, BeamSearchParams
from ttc_core.strategies.best_of_n import BestOfN, BestOfNParams
from ttc_core.strategies.dvts import Dvts, DvtsParams
from ttc_core.strategies.mcts import Mcts, MctsParams
from ttc_core.strategies.refine import Refine, RefineParams
from ttc_core.strategies.self_consistency import SelfConsistency, SelfConsistencyParams
from ttc_core.strategies.think import Think, ThinkParams
from ttc_core.strategies.tot_bfs import TotBfs, TotBfsParams
from ttc_core.strategies.tot_dfs import TotDfs, TotDfsParams

STRATEGIES: dict[str, Strategy[Any]] = {
    s.name: s
    for s in (
        BestOfN(),
        SelfConsistency(),
        BeamSearch(),
        Dvts(),
        TotBfs(),
        TotDfs(),
        Mcts(),
        Refine(),
        Think(),
        Auto(),
    )
}


def get_strategy(name: str) -> Strategy[Any]:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)}") from None


__all__ = [
    "STRATEGIES",
    "Auto",
    "AutoParams",
    "BeamSearch",
    "BeamSearchParams",
    "BestOfN",
    "BestOfNParams",
    "Dvts",
    "DvtsParams",
    "Expand",
    "Mcts",
    "MctsParams",
    "Plan",
    "Refine",
    "RefineParams",
    "SamplingParams",
    "Selection",
    "SelfConsistency",
    "SelfConsistencyParams",
    "Strategy",
    "Think",
    "ThinkParams",
    "TotBfs",
    "TotBfsParams",
    "TotDfs",
    "TotDfsParams",
    "get_strategy",
]
