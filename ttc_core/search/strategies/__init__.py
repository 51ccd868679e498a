"""Strategies by name. One module per strategy; the registry is the only dispatch."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ttc_core.errors import InputError, UnknownNameError
from ttc_core.search.auto import AutoPolicy
from ttc_core.search.strategies.auto import Auto, AutoParams
from ttc_core.search.strategies.base import (
    Expand,
    Plan,
    SamplingParams,
    Selection,
    Strategy,
)
from ttc_core.search.strategies.beam_search import BeamSearch, BeamSearchParams
from ttc_core.search.strategies.best_of_n import BestOfN, BestOfNParams
from ttc_core.search.strategies.dvts import Dvts, DvtsParams
from ttc_core.search.strategies.mcts import Mcts, MctsParams
from ttc_core.search.strategies.refine import Refine, RefineParams
from ttc_core.search.strategies.sample import Sample, SampleParams
from ttc_core.search.strategies.self_consistency import SelfConsistency, SelfConsistencyParams
from ttc_core.search.strategies.think import Think, ThinkParams
from ttc_core.search.strategies.tot_bfs import TotBfs, TotBfsParams
from ttc_core.search.strategies.tot_dfs import TotDfs, TotDfsParams

STRATEGIES: dict[str, Strategy[Any]] = {}
STRATEGIES.update(
    (s.name, s)
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
        Sample(),
        Auto(STRATEGIES),
    )
)


def get_strategy(name: str) -> Strategy[Any]:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)}") from None


def check_policy(policy: AutoPolicy, *, field: str = "auto_policy") -> None:
    """Every band of an ``auto`` policy names a known strategy (not ``auto``) whose
    parameters parse; raises :class:`InputError` naming the offending field
    (``<field>.bands.<i>.strategy`` ...)."""
    for i, band in enumerate(policy.bands):
        where = f"{field}.bands.{i}"
        strategy = STRATEGIES.get(band.strategy)
        if strategy is None or band.strategy == "auto":
            known = ", ".join(sorted(n for n in STRATEGIES if n != "auto"))
            raise UnknownNameError(
                f"band {band.name!r} names unknown strategy {band.strategy!r}; known: {known}",
                field=f"{where}.strategy",
            )
        try:
            strategy.parse_params(band.params)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise InputError(
                f"band {band.name!r}: params.{loc}: {err['msg']}", field=f"{where}.params.{loc}"
            ) from None


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
    "Sample",
    "SampleParams",
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
    "check_policy",
    "get_strategy",
]
