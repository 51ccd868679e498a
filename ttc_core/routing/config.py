"""An endpoint's routing settings (``routing`` in its ``TTC_ENDPOINTS`` entry)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ttc_core.routing.base import POLICIES


class RoutingConfig(BaseModel):
    """How requests are spread over an endpoint's replicas (see ``ttc_core.routing``)."""

    model_config = ConfigDict(extra="forbid")

    #: ``prefix_affinity``, ``least_loaded``, ``round_robin``, or a registered policy.
    policy: str = "prefix_affinity"
    #: Characters per prefix block hashed by ``prefix_affinity`` (about 16 tokens at four
    #: characters a token: vLLM's KV block size), so affinity follows whole cache blocks.
    block_chars: int = Field(default=64, ge=8, le=65_536)
    #: Bounded loads: no replica takes a request that would put it above this multiple of
    #: the mean load (consistent hashing with bounded loads; 1.25 as in Mirrokni et al.).
    load_factor: float = Field(default=1.25, ge=1.0, le=100.0)
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
