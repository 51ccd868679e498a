"""Server profiles: the simulator behaving like the server software it stands in for.

``SimConfig.server`` picks one. ``generic`` is the lenient simulator every test used to
get; the others reproduce what was measured on, or read in the source of, the real
servers (``/work/shared/REAL-SERVERS.md``, issue 12):

``vllm``
    ``GET /version``; ``/v1/models`` lists ``owned_by: "vllm"`` and ``max_model_len``;
    choice ``i`` of ``n`` is sampled with ``seed + i`` (vLLM V1); ``/pooling`` and
    ``/classify`` are served.
``sglang``
    ``GET /get_server_info`` and ``/get_model_info``; one ``seed`` is copied to all ``n``
    samples, so with a seed (and the simulator is always deterministic) the ``n`` samples
    come back identical; no ``/pooling`` route.
``llamacpp``
    ``GET /props``; ``n`` above ``--parallel`` (``parallel``, 4) is refused with 400
    ``{"error": {"code": 400, "message": "Field 'n': Value must be between 1 <= value <= 4,
    but got 16", "type": "invalid_request_error"}}`` (no ``param``); a continued final
    assistant message comes back *with* the prefill text in ``content``; ``usage`` counts
    the completion tokens of one choice only; no ``/pooling`` or ``/classify``.
``llamacpp_old``
    Older llama.cpp: any ``n`` > 1 is answered HTTP 500 "Only one completion choice is
    allowed"; otherwise as ``llamacpp``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .asgi import HTTPError
from .config import SimConfig

__all__ = ["PROFILES", "ServerProfile", "n_rejection", "profile"]

VLLM_VERSION = "0.32.0"
SGLANG_VERSION = "0.5.3"
LLAMACPP_BUILD = "b6700-sim"

Info = Callable[[SimConfig, str], dict[str, Any]]


def _vllm_version(cfg: SimConfig, model: str) -> dict[str, Any]:
    return {"version": VLLM_VERSION}


def _sglang_server_info(cfg: SimConfig, model: str) -> dict[str, Any]:
    return {
        "version": SGLANG_VERSION,
        "model_path": model,
        "tokenizer_path": model,
        "served_model_name": model,
        "context_length": cfg.max_model_len,
        "enable_deterministic_inference": True,
        "random_seed": cfg.fault_seed,
    }


def _sglang_model_info(cfg: SimConfig, model: str) -> dict[str, Any]:
    return {"model_path": model, "tokenizer_path": model, "is_generation": True}


def _llamacpp_props(cfg: SimConfig, model: str) -> dict[str, Any]:
    return {
        "default_generation_settings": {
            "n_ctx": cfg.max_model_len or 4096,
            "params": {"n_predict": -1, "temperature": 0.8, "seed": 4294967295},
        },
        "total_slots": cfg.parallel,
        "model_path": f"/models/{model}.gguf",
        "chat_template": "{{ messages }}",
        "build_info": LLAMACPP_BUILD,
    }


@dataclass(frozen=True)
class ServerProfile:
    name: str
    #: What ``/v1/models`` says owns the models.
    owned_by: str = "ttc-sim"
    #: Extra GET routes that describe the server (what a client's probe reads).
    info_routes: dict[str, Info] = field(default_factory=dict)
    #: Routes this server does not have (answered 404).
    missing_routes: frozenset[str] = frozenset()
    #: One seed for all ``n`` samples (SGLang), instead of ``seed + i``.
    shares_seed: bool = False
    #: A continued final assistant message is returned with the new text (llama.cpp).
    echoes_prefill: bool = False
    #: ``usage.completion_tokens`` counts one choice of ``n`` (llama.cpp).
    usage_one_choice: bool = False


_NO_POOLING = frozenset({"/pooling", "/v1/pooling"})
_NO_CLASSIFY = frozenset({"/classify", "/v1/classify"})

PROFILES: dict[str, ServerProfile] = {
    "generic": ServerProfile("generic"),
    "vllm": ServerProfile("vllm", owned_by="vllm", info_routes={"/version": _vllm_version}),
    "sglang": ServerProfile(
        "sglang",
        owned_by="sglang",
        info_routes={
            "/get_server_info": _sglang_server_info,
            "/get_model_info": _sglang_model_info,
        },
        missing_routes=_NO_POOLING,
        shares_seed=True,
    ),
    "llamacpp": ServerProfile(
        "llamacpp",
        owned_by="llamacpp",
        info_routes={"/props": _llamacpp_props},
        missing_routes=_NO_POOLING | _NO_CLASSIFY,
        echoes_prefill=True,
        usage_one_choice=True,
    ),
    "llamacpp_old": ServerProfile(
        "llamacpp_old",
        owned_by="llamacpp",
        info_routes={"/props": _llamacpp_props},
        missing_routes=_NO_POOLING | _NO_CLASSIFY,
        echoes_prefill=True,
        usage_one_choice=True,
    ),
}


def profile(cfg: SimConfig) -> ServerProfile:
    return PROFILES[cfg.server]


def n_rejection(cfg: SimConfig, n: int) -> HTTPError | None:
    """The error this server answers a request for ``n`` samples with, if any."""
    if cfg.server == "llamacpp_old" and n > 1:
        return HTTPError(500, "Only one completion choice is allowed", code=500, omit_param=True)
    if cfg.server == "llamacpp" and n > cfg.parallel:
        return HTTPError(
            400,
            f"Field 'n': Value must be between 1 <= value <= {cfg.parallel}, but got {n}",
            code=400,
            omit_param=True,
        )
    if cfg.reject_n and n > 1:
        return HTTPError(
            400,
            "n > 1 is not supported by this server; send one request per sample",
            param="n",
            code="unsupported_parameter",
        )
    return None
