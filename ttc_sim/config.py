"""Configuration of the simulated inference server.

:class:`SimConfig` holds every knob. The server has one config; a request can override most
fields for itself through the model name::

    "sim-gsm8k"                                       # the server's config as is
    "sim-gsm8k;sample_accuracy=0.3;distractors=4"     # two fields overridden for this request
    "sim-rm;reward_noise=0"                           # works for the reward endpoints too
    "sim-prm;prm_noise=0.5"                           # and for the process reward model

The part before the first ``;`` is the model name proper (any name is accepted; ``/v1/models``
lists the usual ones). Each further ``key=value`` pair overrides the :class:`SimConfig` field of
that name (``-`` may stand for ``_``; ``none``/``null`` sets an optional field to ``None``;
booleans accept ``true``/``false``/``1``/``0``). An unknown key, a bad value, or a server-wide
field (``slots``, ``fault_seed``) gives a 400 with an OpenAI-style error body.

Knobs
-----
Latency
    ``base_latency_s`` (0.05) + ``per_token_latency_s`` (0.0002) x completion tokens is how long
    one generated sequence holds one of ``slots`` (64) concurrent slots; sequences beyond that
    wait in a FIFO queue. ``reward_latency_s`` (0.005) is the time a reward request takes (no
    slot), process reward requests included. Value, critique and revision requests are
    generation requests and take slots like any other.
Prefix cache and prefill (see :mod:`ttc_sim.prefix_cache`)
    The server keeps an LRU cache of ``prefix_cache_blocks`` (4096) KV blocks of
    ``block_size`` (16) tokens, as vLLM's automatic prefix caching does (0: no cache). A
    request prefills the prompt tokens its cache lacks, at ``prefill_latency_per_token_s``
    (0: prefill is free, the old latency model) each, before its sequences generate.
    ``batching`` (``slots``): in ``slots`` each sequence holds a slot for ``base +
    prefill + per-token x tokens``; in ``continuous`` (continuous batching on one GPU)
    prefills run one at a time for the whole server (compute-bound) and each decode
    token takes ``per_token_latency_s x (1 + decode_slowdown x active sequences)``, so
    latency grows with uncached tokens and with the batch. Usage says what was cached in
    ``usage.prompt_tokens_details.cached_tokens`` (vLLM with
    ``--enable-prompt-tokens-details``; ``prompt_tokens_details`` false leaves it out);
    ``/metrics`` counts it under vLLM's names (``vllm:prefix_cache_queries_total``,
    ``vllm:prefix_cache_hits_total``, ``vllm:prompt_tokens_total``, ...).
Quality
    ``step_accuracy`` (0.85): probability that each reasoning step is right; any wrong step makes
    the final answer wrong. ``sample_accuracy`` (None): if set, a sample is right with exactly
    this probability whatever its number of steps. ``distractors`` (4): number of distinct wrong
    answers per problem; a wrong sample picks one uniformly (multiple choice has at most 4; Game
    of 24 wrong answers come from the dead-end moves instead). ``reward_noise`` (0.15): the
    reward model's logit is +-2 plus Gaussian noise of standard deviation ``reward_noise * 10``.
    ``step_variety`` (0.75): probability that a generated step (right or wrong) is phrased with
    one of a few lead-ins (``"Now: "``, ...) rather than verbatim, so that right continuations
    of one prefix differ between seeds (diversity for step-level search); 0 gives the reference
    text only.
    ``graded_alpha`` (3.0), ``graded_beta`` (1.0): the ``graded`` family only, instead of
    ``step_accuracy``/``sample_accuracy``: each problem's sample accuracy p is a Beta(alpha,
    beta) draw keyed by the problem id (the default, mean 0.75, is mostly easy with a tail of
    hard and hopeless problems, like a capable model on a benchmark). ``graded_skew`` (0.5):
    a wrong graded sample picks distractor i with weight ``graded_skew ** i`` (1 is uniform).
    ``game24_skill`` (0.5): Game of 24 only, instead of ``step_accuracy``: probability that a
    move keeps 24 reachable, when such a move exists; otherwise the move is a uniformly random
    legal move (which may keep 24 reachable by chance).
    Game of 24 realism (all off by default; see ``bench/RESULTS.md`` for a calibration to the
    Tree-of-Thoughts paper): ``game24_propose_skill`` (None: ``game24_skill``) is the skill of
    a move made on a board the prompt shows, i.e. the first move of every generation (a
    step-level proposal continuing a path whose last line lists the numbers left, or a whole
    sample's first move on the puzzle's numbers); ``game24_sample_skill`` (None:
    ``game24_skill``) is the skill of every later move of the same generation, made on a board
    the model wrote itself (a whole sample's second and third moves: chain-of-thought errors
    compound). ``game24_difficulty_sd`` (0): each puzzle draws a difficulty d ~ N(0, 1) once,
    keyed by its id, and both skills become ``sigmoid(logit(skill) - game24_difficulty_sd * d)``
    on it (a Rasch model), so that some puzzles are nearly never solved and samples of one
    puzzle fail together. ``game24_mistakes`` (``random``): a move that misses is a uniformly
    random legal move (``random``, which may keep 24 reachable by chance) or a uniformly
    random dead-end move (``dead_end``, when one exists: a blunder, as a model's wrong
    arithmetic or wrong board would be). ``game24_value_accuracy`` (None:
    ``judge_accuracy``): the value judge's vote accuracy on Game of 24 paths.
Extended thinking (see :mod:`ttc_sim.thinking`)
    A thought in ``<think>…</think>`` is made of segments of ~``think_mean_tokens`` (150)
    tokens (Gamma, coefficient of variation ``think_length_cv`` (0.5); 0: exactly the mean);
    a forced ``Wait`` continues it by one more segment. The answer after a thought of L tokens
    is right with probability ``think_p0 + (think_p_max - think_p0) * (1 - exp(-L /
    think_tau_tokens))`` (0.3, 0.9, 400). ``think_always`` (false): every fresh sample thinks
    (an R1-style model); otherwise only prompts that open ``<think>`` and chat requests with
    ``chat_template_kwargs.enable_thinking`` do.
Step-level judges (see :mod:`ttc_sim.judges` and :mod:`ttc_sim.prm`)
    ``prm_noise`` (0.2): the process reward model's logit for a step is +-2.2 (steps 1..i all
    right, or not) plus Gaussian noise of standard deviation ``prm_noise * 10``.
    ``judge_accuracy`` (0.8): probability that one value-judge vote (sure / likely /
    impossible) has the right polarity. ``critic_accuracy`` (0.7): probability that a
    Self-Refine critique names the first wrong step (or says "No errors." for a right
    solution); ``critic_feedback_accuracy`` (0.95) replaces it when the prompt carries a
    verifier's feedback line saying the solution is wrong. ``revise_gain`` (0.5): a revision
    after a critique that named the real first error regenerates the rest with step accuracy
    ``p + (1 - p) * revise_gain`` (likewise ``game24_skill`` and ``sample_accuracy``).
Faults (one uniform draw per model request from ``random.Random(fault_seed)``)
    ``fail_500_rate``, ``fail_429_rate`` (with ``Retry-After: retry_after_s``), ``hang_rate``
    (sleep ``hang_s`` then answer), ``malformed_rate`` (200 with a body that is not JSON),
    ``reset_rate`` (the connection is reset without a response). The rates must sum to <= 1.
Protocol
    ``reject_n``: answer 400 when ``n > 1`` like servers that do not support ``n``.
    ``max_n`` (4096): the largest ``n`` accepted.
Real servers' strictness (see :mod:`ttc_sim.servers` and :mod:`ttc_sim.templates`)
    ``server`` (``generic``): ``vllm``, ``sglang``, ``llamacpp`` or ``llamacpp_old`` makes
    the simulator answer as that server does: its probe routes (``/version``, ``/props``,
    ``/get_server_info``), its missing routes (no ``/pooling`` on SGLang), its ``n``
    refusals (llama.cpp: 400 above ``parallel`` (4), older builds 500 for any ``n`` > 1),
    SGLang's one seed for all ``n`` samples, llama.cpp's prefill echoed in ``content`` and
    usage counting one choice. The probe routes and missing routes follow the server's
    own config; the rest also works per request (``"sim;server=sglang"``).
    ``chat_template`` (``none``): ``qwen2.5``, ``llama3`` (trims each message) or ``qwen3``
    (re-renders the last assistant turn's thinking) renders chat requests as vLLM does,
    with ``add_generation_prompt`` (default true) and ``continue_final_message``, and the
    model continues what the template left (a completions prompt that holds a rendered
    assistant turn is continued from it too).
    ``max_model_len`` (None): a prompt longer than this many tokens gets vLLM's 400 ("This
    model's maximum context length is N tokens. However, your prompt contains M input
    tokens, ..."); one that fits but whose ``max_tokens`` does not gets the older message
    ("... However, you requested M tokens (P in the messages, C in the completion). ...").
Hostile output (what a random-weight model and a misbehaving server send)
    ``output_nul``, ``output_surrogates``, ``output_invalid_utf8`` (0): that many NUL
    characters, lone surrogates (JSON ``\\udXXX`` escapes) and bytes that are not UTF-8
    (raw, on the wire) in every generated text. ``garbage_rate`` (0): the share of
    generated texts (drawn per choice; 1: all) that are random-weight-model garbage
    (control characters, U+FFFD, stray bytes, words of no language) of the length the
    request allowed, judges' replies included. ``usage_style`` (``exact``): ``negative``,
    ``missing``, ``float``, ``string``, ``bool`` or ``huge`` corrupts the ``usage``
    numbers of generation responses (the metrics still count the real tokens).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: Fields that are properties of the whole server and cannot be overridden per request.
SERVER_WIDE_FIELDS = frozenset(
    {"slots", "fault_seed", "prefix_cache_blocks", "block_size", "batching"}
)


class SimConfig(BaseModel):
    """Every knob of the simulated server (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_latency_s: float = Field(default=0.05, ge=0)
    per_token_latency_s: float = Field(default=0.0002, ge=0)
    slots: int = Field(default=64, ge=1)
    reward_latency_s: float = Field(default=0.005, ge=0)
    prefix_cache_blocks: int = Field(default=4096, ge=0, le=10_000_000)
    block_size: int = Field(default=16, ge=1, le=1024)
    prefill_latency_per_token_s: float = Field(default=0.0, ge=0)
    batching: Literal["slots", "continuous"] = "slots"
    decode_slowdown: float = Field(default=0.0, ge=0, le=10)
    prompt_tokens_details: bool = True
    step_accuracy: float = Field(default=0.85, ge=0, le=1)
    sample_accuracy: float | None = Field(default=None, ge=0, le=1)
    distractors: int = Field(default=4, ge=1, le=1000)
    reward_noise: float = Field(default=0.15, ge=0)
    step_variety: float = Field(default=0.75, ge=0, le=1)
    game24_skill: float = Field(default=0.5, ge=0, le=1)
    game24_propose_skill: float | None = Field(default=None, ge=0, le=1)
    game24_sample_skill: float | None = Field(default=None, ge=0, le=1)
    game24_difficulty_sd: float = Field(default=0.0, ge=0, le=20)
    game24_mistakes: Literal["random", "dead_end"] = "random"
    game24_value_accuracy: float | None = Field(default=None, ge=0, le=1)
    graded_alpha: float = Field(default=3.0, gt=0, le=1000)
    graded_beta: float = Field(default=1.0, gt=0, le=1000)
    graded_skew: float = Field(default=0.5, gt=0, le=1)
    think_mean_tokens: float = Field(default=150.0, ge=1, le=100_000)
    think_length_cv: float = Field(default=0.5, ge=0, le=5)
    think_p0: float = Field(default=0.3, ge=0, le=1)
    think_p_max: float = Field(default=0.9, ge=0, le=1)
    think_tau_tokens: float = Field(default=400.0, gt=0, le=1_000_000)
    think_always: bool = False
    prm_noise: float = Field(default=0.2, ge=0)
    judge_accuracy: float = Field(default=0.8, ge=0, le=1)
    critic_accuracy: float = Field(default=0.7, ge=0, le=1)
    critic_feedback_accuracy: float = Field(default=0.95, ge=0, le=1)
    revise_gain: float = Field(default=0.5, ge=0, le=1)
    fail_500_rate: float = Field(default=0.0, ge=0, le=1)
    fail_429_rate: float = Field(default=0.0, ge=0, le=1)
    retry_after_s: float = Field(default=1.0, ge=0)
    hang_rate: float = Field(default=0.0, ge=0, le=1)
    hang_s: float = Field(default=30.0, ge=0)
    malformed_rate: float = Field(default=0.0, ge=0, le=1)
    reset_rate: float = Field(default=0.0, ge=0, le=1)
    reject_n: bool = False
    max_n: int = Field(default=4096, ge=1)
    server: Literal["generic", "vllm", "sglang", "llamacpp", "llamacpp_old"] = "generic"
    chat_template: Literal["none", "qwen2.5", "llama3", "qwen3"] = "none"
    parallel: int = Field(default=4, ge=1, le=4096)
    max_model_len: int | None = Field(default=None, ge=1)
    output_nul: int = Field(default=0, ge=0, le=10_000)
    output_surrogates: int = Field(default=0, ge=0, le=10_000)
    output_invalid_utf8: int = Field(default=0, ge=0, le=10_000)
    garbage_rate: float = Field(default=0.0, ge=0, le=1)
    usage_style: Literal["exact", "negative", "missing", "float", "string", "bool", "huge"] = (
        "exact"
    )
    fault_seed: int = 0

    @model_validator(mode="after")
    def _rates_sum(self) -> SimConfig:
        if self.fault_rate_total > 1.0 + 1e-9:
            raise ValueError("the fault rates must sum to at most 1")
        return self

    @property
    def fault_rate_total(self) -> float:
        return (
            self.fail_500_rate
            + self.fail_429_rate
            + self.hang_rate
            + self.malformed_rate
            + self.reset_rate
        )


class ModelNameError(ValueError):
    """A model name with an unknown key or a bad value."""


def split_model_name(model: str) -> tuple[str, dict[str, str]]:
    """``"sim-x;a=1;b=2"`` -> ``("sim-x", {"a": "1", "b": "2"})``."""
    name, *pairs = model.split(";")
    overrides: dict[str, str] = {}
    for pair in pairs:
        pair = pair.strip()
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep:
            raise ModelNameError(f"model override {pair!r} is not key=value")
        overrides[key.strip().replace("-", "_")] = value.strip()
    return name.strip(), overrides


def apply_overrides(cfg: SimConfig, overrides: dict[str, str]) -> SimConfig:
    """A copy of ``cfg`` with string overrides validated into it."""
    if not overrides:
        return cfg
    data: dict[str, Any] = cfg.model_dump()
    for key, value in overrides.items():
        if key not in SimConfig.model_fields:
            raise ModelNameError(f"unknown model override {key!r}")
        if key in SERVER_WIDE_FIELDS:
            raise ModelNameError(f"{key!r} is server-wide and cannot be overridden per request")
        data[key] = None if value.lower() in ("none", "null") else value
    try:
        return SimConfig.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise ModelNameError(f"bad model override: {errors}") from None


def config_for_model(cfg: SimConfig, model: str) -> tuple[str, SimConfig]:
    """Resolve a request's model name into (name proper, effective config)."""
    name, overrides = split_model_name(model)
    return name, apply_overrides(cfg, overrides)
