"""From an OpenAI request to a ttc job: the model name, the standard fields, the ``ttc``
object; and back from a job field to the request parameter that set it.

``model`` is ``strategy@endpoint`` (``self_consistency@local-vllm``) or an endpoint name,
which is one plain sample (strategy ``sample``). The standard sampling fields become the
strategy's parameters; the ``ttc`` object's ``params`` win over them where both are given
(they are the more specific). ``n`` is the number of ranked answers to return, except on
a bare endpoint, where it is the number of plain samples (OpenAI's meaning).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ttc_api.openai_compat.errors import OpenAIError, model_not_found
from ttc_api.openai_compat.options import TTCOptions
from ttc_api.submit import JobCreate
from ttc_core.engine.thinking import ThinkingSpec
from ttc_core.errors import InputError, LimitError
from ttc_core.search.strategies import STRATEGIES
from ttc_core.service.submission import ChatMessage
from ttc_core.settings import Settings

#: The strategy of a bare endpoint name: plain samples, no search.
PLAIN = "sample"
#: The job fields the ``ttc`` object carries (an error about one names ``ttc.<field>``).
TTC_FIELDS = (
    "params",
    "verifier",
    "prm",
    "reference",
    "budget",
    "thinking",
    "seed",
    "cache",
    "webhook",
)


@dataclass(frozen=True)
class ModelRef:
    """What a ``model`` string names."""

    name: str
    strategy: str
    endpoint: str


def generate_endpoints(settings: Settings) -> list[str]:
    return sorted(n for n, e in settings.endpoints.items() if e.kind == "generate")


def model_ids(settings: Settings) -> list[str]:
    """Every model a client may name: each endpoint, then each strategy@endpoint pair."""
    endpoints = generate_endpoints(settings)
    pairs = [f"{s}@{e}" for e in endpoints for s in sorted(STRATEGIES) if s != PLAIN]
    return [*endpoints, *pairs]


def resolve_model(model: str, settings: Settings) -> ModelRef:
    strategy, at, endpoint = model.partition("@")
    if not at:
        strategy, endpoint = PLAIN, model
    if strategy not in STRATEGIES or endpoint not in generate_endpoints(settings):
        raise model_not_found(model)
    return ModelRef(name=model, strategy=strategy, endpoint=endpoint)


@dataclass
class Standard:
    """The standard OpenAI fields that map onto the job (None: not sent)."""

    temperature: float | None = None
    top_p: float | None = None
    #: ``(value, request name)``: ``max_tokens``, ``max_completion_tokens`` or
    #: ``max_output_tokens`` (the Responses API).
    max_tokens: tuple[int, str] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    reasoning_effort: str | None = None


@dataclass
class JobRequest:
    """The job an OpenAI request stands for, and where each of its fields came from."""

    spec: JobCreate
    options: TTCOptions
    #: Number of ranked answers to return.
    choices: int
    #: Job field -> request parameter, for the fields the standard fields set.
    sources: dict[str, str] = field(default_factory=dict)
    #: The request parameter the prompt came from (``messages``, ``prompt``, ``input``).
    prompt_param: str = "messages"

    def param_for(self, job_field: str | None) -> str | None:
        """The request parameter a job field's error is about."""
        if job_field is None:
            return None
        if job_field in self.sources:
            return self.sources[job_field]
        head = job_field.split(".", 1)[0]
        if head in ("strategy", "endpoint"):
            return "model"
        if head in ("messages", "prompt"):
            return self.prompt_param + job_field[len(head) :]
        if head in TTC_FIELDS:
            return f"ttc.{job_field}"
        return job_field


def job_request(
    ref: ModelRef,
    options: TTCOptions | None,
    standard: Standard,
    *,
    messages: list[ChatMessage] | None = None,
    prompt: str | None = None,
    prompt_param: str = "messages",
) -> JobRequest:
    """The job for a request (validated later, by the submission service)."""
    options = options or TTCOptions()
    params: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(name: str, value: Any, param: str) -> None:
        if value is not None and name not in options.params:
            params[name] = value
            sources[f"params.{name}"] = param

    put("temperature", standard.temperature, "temperature")
    put("top_p", standard.top_p, "top_p")
    if standard.max_tokens is not None:
        put("max_tokens", standard.max_tokens[0], standard.max_tokens[1])
    stop = [standard.stop] if isinstance(standard.stop, str) else standard.stop
    put("stop", stop or None, "stop")
    choices = standard.n or 1
    if ref.strategy == PLAIN:
        put("n", standard.n, "n")
    params.update(options.params)
    seed = options.seed
    if seed is None and standard.seed is not None:
        seed, sources["seed"] = standard.seed, "seed"
    thinking = options.thinking
    if standard.reasoning_effort is not None:
        thinking = _with_effort(thinking, standard.reasoning_effort)
        sources["thinking.effort"] = "reasoning_effort"
    spec = JobCreate(
        strategy=ref.strategy,
        endpoint=ref.endpoint,
        prompt=prompt,
        messages=messages,
        params=params,
        verifier=options.verifier,
        prm=options.prm,
        reference=options.reference,
        budget=options.budget,
        seed=seed,
        cache=options.cache,
        webhook=options.webhook,
        thinking=thinking,
    )
    return JobRequest(spec, options, choices, sources, prompt_param)


_EFFORTS = ("minimal", "low", "medium", "high")


def _with_effort(thinking: ThinkingSpec | None, effort: str) -> ThinkingSpec:
    if effort not in _EFFORTS:
        raise OpenAIError(
            400,
            f"reasoning_effort must be one of {', '.join(_EFFORTS)}",
            param="reasoning_effort",
            code="invalid_value",
        )
    if thinking is not None and thinking.effort is not None:
        return thinking  # the ttc object's own effort is the more specific
    base = thinking or ThinkingSpec()
    return base.model_copy(update={"effort": effort})


def refused(exc: InputError, request: JobRequest) -> OpenAIError:
    """A refused submission as an OpenAI 400 naming the request parameter."""
    code = "limit_exceeded" if isinstance(exc, LimitError) else "invalid_value"
    status = 400 if exc.status == 422 else exc.status
    return OpenAIError(status, str(exc), param=request.param_for(exc.field), code=code)
