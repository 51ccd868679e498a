"""The packages are layers: a module imports only from its own layer or from layers below
it (the README's *Architecture* draws them). Every ``import`` counts, at module level or in
a function, as in ``test_import_cycles``; ``if TYPE_CHECKING:`` blocks are left out."""

from __future__ import annotations

import ast

from tests.test_import_cycles import _imports, _modules

#: Bottom first. A module belongs to the longest prefix listed; each layer keeps one rule.
LAYERS: list[tuple[str, ...]] = [
    # Shared words: the exception tree, storable text.
    ("ttc_core.errors", "ttc_core.text_safety"),
    # Pure planning (tree views, strategies, prompts: no I/O), metrics and log context,
    # the routing policies, the sandbox policy.
    ("ttc_core.search",),
    ("ttc_core.observability", "ttc_core.routing", "ttc_core.sandbox"),
    # One settings module, read by everything above.
    ("ttc_core.settings", "ttc_core.settings_errors"),
    # Talking to servers: inference clients, fleets, what an attempt paid.
    ("ttc_core.inference",),
    # Persistence (models, queries, events, the expansion cache) and the scorers.
    ("ttc_core.store", "ttc_core.scoring"),
    ("ttc_core.verifiers",),
    ("ttc_core.webhooks",),
    # The job engine: driver step, expansion, claims, budgets, control, reaper.
    ("ttc_core.engine",),
    # Tenancy, idempotency, limits and submission, for the API and the CLI; the database's
    # gauges.
    ("ttc_core.service", "ttc_core.observability.collectors"),
    # Units of many jobs: evals, then problem batches (whose rows both are).
    ("ttc_core.evals",),
    ("ttc_core.problem_batches",),
    # What runs the engine: the in-process executor, the Celery worker.
    ("ttc_core.executor",),
    ("ttc_worker",),
    ("ttc_api",),
    ("ttc_cli",),
]
#: The simulator stands apart: ttc_core never imports it (the CLI starts it).
APART = ("ttc_sim",)


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rank)
    return None if best is None else best[1]


def upward_imports() -> list[str]:
    known = _modules()
    found = []
    for name, path in sorted(known.items()):
        here = layer_of(name)
        for target in sorted(_imports(name, path, known)):
            there = layer_of(target)
            if name.startswith(APART) or target.startswith(APART):
                if target.startswith(APART) and name.startswith("ttc_core"):
                    found.append(f"{name} -> {target} (ttc_core must not need the simulator)")
                continue
            if here is None or there is None:
                found.append(f"{name} -> {target}: not in a layer")
            elif there > here:
                found.append(f"{name} -> {target}")
    return found


def test_every_module_is_in_a_layer() -> None:
    missing = [
        m for m in _modules() if layer_of(m) is None and not m.startswith(APART) and m != "ttc_core"
    ]
    assert missing == []


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    assert upward_imports() == []


def test_layer_of_takes_the_longest_prefix() -> None:
    assert layer_of("ttc_core.observability.collectors") == layer_of("ttc_core.service")
    assert layer_of("ttc_core.observability.metrics") == layer_of("ttc_core.routing")
    layers = [layer_of(m) for m in ("ttc_core.search.tree", "ttc_core.engine.steps", "ttc_api")]
    assert layers == sorted(layers) and len(set(layers)) == 3


#: What planning never touches: strategies are fed trees and return plans.
IO_LIBRARIES = {"httpx", "sqlalchemy", "redis", "celery", "aiohttp", "socket", "subprocess"}


def test_the_search_layer_does_no_io() -> None:
    offenders = []
    for name, path in _modules().items():
        if not name.startswith("ttc_core.search"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            roots = []
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                roots = [node.module.split(".")[0]]
            offenders += [f"{name} imports {r}" for r in roots if r in IO_LIBRARIES]
    assert offenders == []
