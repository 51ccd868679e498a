"""An endpoint's routing settings (``routing`` in its ``TTC_ENDPOINTS`` entry)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ttc_core.routing.base import POLICIES


class RoutingConfig(BaseModel):
    """How requests are spread over an endpoint's replicas (see ``ttc_core.routing``)."""

    model_config = ConfigDict(extra="forbid")

    #: ``prefix_affinity``, ``least_loaded``, ``round_robin``, or a registered policy.
    policy: str = "prefix_affinity"
    #: Characters per prefix block hashed by ``prefix_affinity`` (about 4 tokens at four
    #: characters a token: finer than a server's 16-token KV block, so that a path whose
    #: last step ends within a block of where its siblings' diverge is still told apart).
    block_chars: int = Field(default=16, ge=8, le=65_536)
    #: Bounded loads: no replica takes a request that would put it above this multiple of
    #: the mean load (consistent hashing with bounded loads; 1.25 as in Mirrokni et al.).
    load_factor: float = Field(default=1.25, ge=1.0, le=100.0)
    #: The load that ``load_factor`` bounds. ``recent``: the sequences routed to each
    #: replica, decayed over the last ``load_window`` sequences routed (each replica's share
    #: of the work, so one depth of a tree search may pile up where its paths are if the
    #: next evens it out); ``in_flight``: the sequences in flight on it now (every burst
    #: balanced on its own).
    load_measure: Literal["recent", "in_flight"] = "recent"
    #: With ``recent``: a replica may go this many sequences above the mean however small
    #: the mean (as SGLang's router leaves imbalances under its ``balance_abs_threshold``
    #: alone), so that a fresh process does not scatter a path's first continuations. Keep
    #: it under ``split_n_above``, so that the pieces of a split ``n`` still spread.
    load_slack: int = Field(default=8, ge=0, le=1_000_000)
    #: Sequences over which ``recent`` load decays (by 1/e): many searches' worth, so that
    #: shares even out over a search's depths, while old work is forgotten in the end.
    load_window: int = Field(default=65536, ge=1, le=100_000_000)
    #: Prefix blocks whose replica is remembered (per endpoint and process, LRU).
    table_blocks: int = Field(default=200_000, ge=1, le=100_000_000)
    #: A request with more than this ``n`` is split across replicas (never into pieces
    #: smaller than this): a large ``n`` fills every replica's batch, a small one stays
    #: whole on the replica that holds its prefix.
    split_n_above: int = Field(default=16, ge=1, le=100_000)

    @field_validator("policy")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in POLICIES:
            known = ", ".join(sorted(POLICIES))
            raise ValueError(f"unknown routing policy {value!r}; known: {known}")
        return value
