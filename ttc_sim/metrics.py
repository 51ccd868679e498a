"""Counters and gauges of the simulated server (``GET /metrics``, ``POST /metrics/reset``).

``requests`` counts every HTTP request by route and status (status 0: no response, i.e. a
reset or a client gone); ``requests_total`` counts the generation requests only
(``/v1/completions`` and ``/v1/chat/completions``, any status), ``http_requests_total`` all of
them; ``reward_requests``/``reward_items`` count successful reward-model calls and the texts
they scored; ``prm_requests``/``prm_items``/``prm_steps`` count successful process-reward
calls (``/pooling``, ``/v1/prm``), the paths they scored and the step scores returned;
``choices_total`` and the token totals count what successful generation responses returned
(equal to the sums of their ``usage``), and ``value_choices``, ``critique_choices`` and
``revise_choices`` the choices among them that answered a value, critique or revision prompt
(Prometheus: ``ttc_sim_judge_choices_total{kind=...}``). ``prefix_cache_queries_total``
and ``prefix_cache_hits_total`` count the prompt tokens of successful generation
requests looked up in the prefix cache and those found there (vLLM's counters of the same
names, in tokens); ``prefilled_tokens_total`` is their difference, the prompt tokens the
server computed.

The Prometheus text also carries vLLM's names for what vLLM measures
(``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``,
``vllm:prefix_cache_queries_total``, ``vllm:prefix_cache_hits_total``,
``vllm:request_success_total``, ``vllm:num_requests_running``), labelled
``model_name="ttc-sim"``, so dashboards and routers written for vLLM read it as they are.

Everything is updated from the server's event loop; reading from another thread gets a
consistent-enough snapshot for tests and benchmarks.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

#: Routes whose requests ``requests_total`` counts (every status, faults included).
GENERATION_ROUTES = frozenset({"/v1/completions", "/v1/chat/completions"})

_COUNTERS = (
    "choices_total",
    "prompt_tokens_total",
    "completion_tokens_total",
    "prefix_cache_queries_total",
    "prefix_cache_hits_total",
    "reward_requests",
    "reward_items",
    "prm_requests",
    "prm_items",
    "prm_steps",
)

#: Judge prompts whose choices are counted apart (``<kind>_choices`` in the snapshot).
JUDGE_KINDS = ("value", "critique", "revise")


class Metrics:
    """Request counts by route and status, token totals, in-flight gauges, faults by kind."""

    def __init__(self) -> None:
        self.in_flight_requests = 0
        self.in_flight_sequences = 0
        self.queued_sequences = 0
        self.reset()

    def reset(self) -> None:
        """Zero the counters; peaks restart from the current in-flight values."""
        self.requests: Counter[tuple[str, int]] = Counter()
        self.faults: Counter[str] = Counter()
        self.choices_total = 0
        self.prompt_tokens_total = 0
        self.completion_tokens_total = 0
        self.prefix_cache_queries_total = 0
        self.prefix_cache_hits_total = 0
        #: Generation requests answered 200 (vLLM's ``request_success``).
        self.generation_requests_ok = 0
        self.reward_requests = 0
        self.reward_items = 0
        self.prm_requests = 0
        self.prm_items = 0
        self.prm_steps = 0
        self.judge_choices: Counter[str] = Counter()
        self.peak_in_flight_requests = self.in_flight_requests
        self.peak_in_flight_sequences = self.in_flight_sequences

    # gauges -------------------------------------------------------------------------------
    def request_started(self) -> None:
        self.in_flight_requests += 1
        self.peak_in_flight_requests = max(self.peak_in_flight_requests, self.in_flight_requests)

    def request_finished(self) -> None:
        self.in_flight_requests -= 1

    def sequence_started(self) -> None:
        self.in_flight_sequences += 1
        self.peak_in_flight_sequences = max(self.peak_in_flight_sequences, self.in_flight_sequences)

    def sequence_finished(self) -> None:
        self.in_flight_sequences -= 1

    # output -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        by_route: dict[str, dict[str, int]] = {}
        for (route, status), count in sorted(self.requests.items()):
            by_route.setdefault(route, {})[str(status)] = count
        out: dict[str, Any] = {
            "requests": by_route,
            "requests_total": sum(
                n for (route, _), n in self.requests.items() if route in GENERATION_ROUTES
            ),
            "http_requests_total": sum(self.requests.values()),
        }
        for name in _COUNTERS:
            out[name] = getattr(self, name)
        for kind in JUDGE_KINDS:
            out[f"{kind}_choices"] = self.judge_choices[kind]
        out["prefilled_tokens_total"] = self.prefilled_tokens_total
        out["generation_requests_ok"] = self.generation_requests_ok
        out.update(
            in_flight_requests=self.in_flight_requests,
            peak_in_flight_requests=self.peak_in_flight_requests,
            in_flight_sequences=self.in_flight_sequences,
            peak_in_flight_sequences=self.peak_in_flight_sequences,
            queued_sequences=self.queued_sequences,
            faults=dict(sorted(self.faults.items())),
        )
        return out

    @property
    def prefilled_tokens_total(self) -> int:
        return self.prefix_cache_queries_total - self.prefix_cache_hits_total

    def prometheus(self) -> str:
        lines = ["# TYPE ttc_sim_requests_total counter"]
        for (route, status), count in sorted(self.requests.items()):
            lines.append(f'ttc_sim_requests_total{{route="{route}",status="{status}"}} {count}')
        lines.append("# TYPE ttc_sim_faults_total counter")
        for kind, count in sorted(self.faults.items()):
            lines.append(f'ttc_sim_faults_total{{kind="{kind}"}} {count}')
        for name in _COUNTERS:
            metric = name if name.endswith("_total") else f"{name}_total"
            lines.append(f"# TYPE ttc_sim_{metric} counter")
            lines.append(f"ttc_sim_{metric} {getattr(self, name)}")
        lines.append("# TYPE ttc_sim_judge_choices_total counter")
        for kind in JUDGE_KINDS:
            lines.append(f'ttc_sim_judge_choices_total{{kind="{kind}"}} {self.judge_choices[kind]}')
        for name in (
            "in_flight_requests",
            "peak_in_flight_requests",
            "in_flight_sequences",
            "peak_in_flight_sequences",
            "queued_sequences",
        ):
            lines.append(f"# TYPE ttc_sim_{name} gauge")
            lines.append(f"ttc_sim_{name} {getattr(self, name)}")
        lines.append("# TYPE ttc_sim_prefilled_tokens_total counter")
        lines.append(f"ttc_sim_prefilled_tokens_total {self.prefilled_tokens_total}")
        lines.extend(self._vllm_lines())
        return "\n".join(lines) + "\n"

    def _vllm_lines(self) -> list[str]:
        """vLLM's own metric names for what it measures alike."""
        label = '{model_name="ttc-sim"}'
        rows = (
            ("vllm:prompt_tokens_total", "counter", self.prompt_tokens_total),
            ("vllm:generation_tokens_total", "counter", self.completion_tokens_total),
            ("vllm:prefix_cache_queries_total", "counter", self.prefix_cache_queries_total),
            ("vllm:prefix_cache_hits_total", "counter", self.prefix_cache_hits_total),
            ("vllm:request_success_total", "counter", self.generation_requests_ok),
            ("vllm:num_requests_running", "gauge", self.in_flight_requests),
        )
        lines: list[str] = []
        for name, kind, value in rows:
            family = name.removesuffix("_total") if kind == "counter" else name
            lines.append(f"# TYPE {family} {kind}")
            lines.append(f"{name}{label} {value}")
        return lines
