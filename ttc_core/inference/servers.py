"""What ttc must know about the server behind an endpoint, by server software.

OpenAI-compatible servers agree on the routes and differ where search depends on them:

============  ==========================================================================
vLLM          ``n`` > 1 with ``seed`` gives distinct samples (choice i is seeded seed + i).
              Renders chats with the model's own template on request
              (``/v1/chat/completions/render``), so a partial assistant turn is continued
              on ``/v1/completions`` with the rendered prompt plus the text appended as it
              is: templates that trim (Llama 3) or re-render the last turn (Qwen3) never
              see it. Thinking budget field ``thinking_token_budget``; template switch
              ``chat_template_kwargs.enable_thinking``; ``/pooling`` and ``/classify``.
SGLang        Copies one ``seed`` to all ``n`` samples (identical under deterministic
              inference): ttc sends ``n`` requests with seeds seed + i (its radix cache
              still shares the prompt). Continues with ``continue_final_message``; no
              ``/pooling`` route.
llama.cpp     Caps ``n`` at ``--parallel``; a final assistant message is continued as a
              prefill (echoed in ``content``); prefill with ``enable_thinking`` is refused.
hosted        OpenAI-style APIs: no ``continue_final_message``, no visible thinking to force,
(``openai``)  ``reasoning_effort`` and ``max_completion_tokens``.
generic       Anything else (TGI, ``ttc_sim``): vLLM's chat extensions, no render route.
============  ==========================================================================

An endpoint's ``server`` names the software, or ``auto`` (the default): the server is probed
once per process (:func:`probe_server`: ``/v1/models``' ``owned_by``, which vLLM, SGLang and
llama.cpp fill in with their names; when that route does not answer, SGLang's
``/get_server_info``, llama.cpp's ``/props`` and vLLM's ``/version``) and what was found is
logged and kept for the process. ``EndpointConfig.server_overrides`` replaces any field of the
resulting :class:`ServerProfile`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from ttc_core.settings import EndpointConfig, ReasoningControls, ServerKind

log = logging.getLogger(__name__)

#: How a partial assistant turn (a path of steps, a thought) is continued:
#: ``render``: the server renders the chat with its own template, ttc appends the text and
#: continues on the completions API; ``continue_final_message``: a chat request ending in
#: the assistant message with vLLM's flags; ``prefill``: a chat request ending in the
#: assistant message, no flags (llama.cpp continues it); ``new_turn``: hosted APIs, which
#: cannot continue a turn: the partial text is sent as the assistant's last message and
#: the model writes the next one.
Continuation = Literal["render", "continue_final_message", "prefill", "new_turn"]


@dataclass(frozen=True, slots=True)
class ServerProfile:
    """Defaults that differ between server software (see the module docstring)."""

    kind: ServerKind
    #: Version the server reported, when the probe found one.
    version: str | None = None
    #: The server seeds every one of ``n`` samples alike: send ``n`` requests, seed + i.
    shares_seed_across_n: bool = False
    continuation: Continuation = "continue_final_message"
    #: Whether chat requests may carry ``continue_final_message``/``add_generation_prompt``.
    continue_final_message: bool = True
    #: Body field of a thinking-token budget (when the endpoint's reasoning controls name
    #: none).
    thinking_budget_param: str | None = None
    #: ``chat_template_kwargs`` switch of thinking (when the endpoint's controls name none).
    thinking_switch: str | None = None
    #: Whether the model's thinking is visible in delimiters by default (forcing possible).
    visible_thinking: bool = True
    #: Effort values the server refuses, and what to send instead (a refusal seen at run
    #: time is also remembered: older vLLM releases refuse ``minimal``).
    effort_aliases: tuple[tuple[str, str], ...] = ()
    #: Reward routes the server offers.
    pooling: bool = True
    classify: bool = True
    #: Route (under the server's root) that answers 200 while the server can serve:
    #: vLLM's, SGLang's and llama.cpp's ``/health`` (llama.cpp answers 503 while loading).
    health_route: str = "/health"

    def effort(self, value: str) -> str:
        return dict(self.effort_aliases).get(value, value)


PROFILES: dict[ServerKind, ServerProfile] = {
    "vllm": ServerProfile(
        kind="vllm",
        continuation="render",
        thinking_budget_param="thinking_token_budget",
        thinking_switch="enable_thinking",
    ),
    "sglang": ServerProfile(
        kind="sglang",
        shares_seed_across_n=True,
        thinking_switch="enable_thinking",
        pooling=False,
    ),
    "llamacpp": ServerProfile(
        kind="llamacpp",
        continuation="prefill",
        continue_final_message=False,
        pooling=False,
        classify=False,
    ),
    "openai": ServerProfile(
        kind="openai",
        health_route="/v1/models",
        continuation="new_turn",
        continue_final_message=False,
        visible_thinking=False,
        pooling=False,
        classify=False,
    ),
    "generic": ServerProfile(kind="generic"),
}

#: ``owned_by`` in ``/v1/models`` as each server fills it in.
_OWNED_BY: dict[str, ServerKind] = {
    "vllm": "vllm",
    "sglang": "sglang",
    "llamacpp": "llamacpp",
    "ttc-sim": "generic",
    "openai": "openai",
    "system": "openai",
    "openai-internal": "openai",
}
_HOSTED_HOSTS = ("api.openai.com", ".openai.azure.com")
PROBE_TIMEOUT_S = 5.0


def profile_for(
    endpoint: EndpointConfig, kind: ServerKind, version: str | None = None
) -> ServerProfile:
    """The built-in profile of ``kind`` with the endpoint's overrides applied."""
    profile = replace(PROFILES[kind], version=version)
    overrides = {
        name: value
        for name, value in endpoint.server_overrides.model_dump(exclude_unset=True).items()
        # null switches a field name off; a null flag means "the server's default"
        if value is not None or name in ("thinking_budget_param", "thinking_switch")
    }
    if "effort_aliases" in overrides:
        overrides["effort_aliases"] = tuple(overrides["effort_aliases"].items())
    return replace(profile, **overrides)


def effective_reasoning(endpoint: EndpointConfig, profile: ServerProfile) -> ReasoningControls:
    """The endpoint's reasoning controls with the server's defaults where the operator set
    none: vLLM's budget field and template switch; no visible thinking on hosted APIs
    (which cannot continue a thought, so nothing to force)."""
    controls = endpoint.reasoning
    chosen = controls.model_fields_set
    update: dict[str, Any] = {}
    if "budget_param" not in chosen and profile.thinking_budget_param:
        update["budget_param"] = profile.thinking_budget_param
    if "enable_param" not in chosen and profile.thinking_switch:
        update["enable_param"] = profile.thinking_switch
    if not profile.visible_thinking:
        update.update(
            {k: None for k in ("think_open", "think_close") if k not in chosen},
        )
        if "effort_param" not in chosen:
            update["effort_param"] = "reasoning_effort"
        if "max_completion_tokens" not in chosen:
            update["max_completion_tokens"] = True
    return controls.model_copy(update=update) if update else controls


def static_profile(endpoint: EndpointConfig) -> ServerProfile | None:
    """The profile known without a request (a named server, or a hosted API's host)."""
    if endpoint.server != "auto":
        return profile_for(endpoint, endpoint.server)
    host = urlsplit(endpoint.base_url).hostname or ""
    if host == _HOSTED_HOSTS[0] or host.endswith(_HOSTED_HOSTS[1]):
        return profile_for(endpoint, "openai")
    return None


#: What probes found in this process, by server root URL: (kind, version).
_FOUND: dict[str, tuple[ServerKind, str | None]] = {}


def server_root(endpoint: EndpointConfig) -> str:
    return endpoint.base_url.rstrip("/").removesuffix("/v1")


async def resolve_profile(
    endpoint: EndpointConfig, http: httpx.AsyncClient, headers: dict[str, str] | None = None
) -> ServerProfile:
    """The endpoint's profile: named, hosted, found earlier in this process, or probed now
    (once per server root; the finding is logged)."""
    known = static_profile(endpoint)
    if known is not None:
        return known
    root = server_root(endpoint)
    found = _FOUND.get(root)
    if found is None:
        found = await probe_server(endpoint, http, headers)
        _FOUND[root] = found
        log.info("server at %s: %s", root, describe(profile_for(endpoint, *found)))
    return profile_for(endpoint, *found)


def forget_probes() -> None:
    """Drop what probes found (a test that restarts a server as another kind)."""
    _FOUND.clear()


async def probe_server(
    endpoint: EndpointConfig, http: httpx.AsyncClient, headers: dict[str, str] | None = None
) -> tuple[ServerKind, str | None]:
    """Which server software answers at ``endpoint`` and its version (``generic``, None when
    nothing identifies it). Never raises: a server that cannot be probed is ``generic``."""
    root = server_root(endpoint)
    base = root + "/v1"

    async def get(url: str) -> Any:
        try:
            resp = await http.get(url, headers=headers, timeout=PROBE_TIMEOUT_S)
            return resp.json() if resp.status_code == 200 else None
        except Exception:  # a probe never fails a request: the server is then generic
            return None

    kind: ServerKind | None = None
    models = await get(base + "/models")
    if isinstance(models, dict) and isinstance(models.get("data"), list) and models["data"]:
        first = models["data"][0]
        if isinstance(first, dict):
            kind = _OWNED_BY.get(str(first.get("owned_by", "")).lower())
    if kind in ("generic", "openai") or (kind is None and isinstance(models, dict)):
        # An unknown server that lists its models like OpenAI: nothing more to learn.
        return kind or "generic", None
    if kind is None:
        info = await get(root + "/get_server_info")
        if isinstance(info, dict) and ("sglang" in str(info).lower() or "tp_size" in info):
            return "sglang", _str(info.get("version"))
        props = await get(root + "/props")
        if isinstance(props, dict) and "default_generation_settings" in props:
            return "llamacpp", _str(props.get("build_info"))
    if kind in (None, "vllm"):
        version = await get(root + "/version")
        if isinstance(version, dict) and isinstance(version.get("version"), str):
            return "vllm", version["version"]
    return kind or "generic", None


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None


def describe(profile: ServerProfile) -> str:
    """One line for logs: the kind, version and any field that differs from generic."""
    base = PROFILES["generic"]
    diffs = [
        f"{f.name}={getattr(profile, f.name)!r}"
        for f in fields(profile)
        if f.name not in ("kind", "version") and getattr(profile, f.name) != getattr(base, f.name)
    ]
    head = profile.kind + (f" {profile.version}" if profile.version else "")
    return head + (f" ({', '.join(diffs)})" if diffs else "")
