"""Conformance: ttc against real server software with tiny local models (``make
conformance``; excluded from ``make test``).

Every test under ``tests/conformance`` is marked ``conformance`` here. The session builds
(or finds cached) the vLLM venv and the tiny models (``environment.py``); a build failure
fails the suite, it never skips. Servers are started once per session, all at once (each
takes ~100 s of engine start-up on 2 cores, so they overlap), and stopped by PID.

Other server families add their fixtures in their own modules, imported at the end of this
file (``llamacpp_fixtures.py``: llama.cpp's ``llama-server``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conformance.environment import Environment, ensure
from tests.conformance.servers import VLLM_ENV, ServerProcess, free_port, vllm_command

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.conformance)


@pytest.fixture(scope="session")
def conformance_env() -> Environment:
    """The venv and models; building them when the cache lacks them (fails loudly)."""
    return ensure()


@dataclass(frozen=True)
class VllmFleet:
    """The vLLM servers of the session, by role."""

    #: Generators: the same random weights under their own chat template each.
    llama3: ServerProcess  # trims message content (`| trim`), like Llama 3
    qwen3: ServerProcess  # re-renders the last assistant turn with a think block, like Qwen3
    prm: ServerProcess  # Qwen2ForProcessRewardModel on /pooling (Qwen2.5-style template)
    orm: ServerProcess  # Qwen2ForSequenceClassification on /classify (Qwen2.5-style)
    step_tag_id: int

    def all(self) -> list[ServerProcess]:
        return [self.llama3, self.qwen3, self.prm, self.orm]


#: Served model names (what an endpoint's ``model`` says).
MODEL_NAMES = {
    "llama3": "tiny-llama3",
    "qwen3": "tiny-qwen3",
    "prm": "tiny-prm",
    "orm": "tiny-orm",
}


@pytest.fixture(scope="session")
def vllm_fleet(
    conformance_env: Environment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmFleet]:
    env = conformance_env
    logs = tmp_path_factory.mktemp("vllm-logs")
    gens = env.manifest["generators"]
    step_tag_id = int(env.manifest["step_tag_id"])
    specs = {
        "llama3": (env.model_dir(gens["llama3"]), ()),
        "qwen3": (env.model_dir(gens["qwen3"]), ()),
        "prm": (
            env.model_dir(env.manifest["prm"]),
            ("--pooler-config", json.dumps({"step_tag_id": step_tag_id})),
        ),
        "orm": (env.model_dir(env.manifest["orm"]), ()),
    }
    servers: dict[str, ServerProcess] = {}
    cores = os.cpu_count() or 1
    for i, (role, (model_dir, extra)) in enumerate(specs.items()):
        port = free_port()
        servers[role] = ServerProcess(
            name=f"vllm {role}",
            command=vllm_command(env.python, model_dir, MODEL_NAMES[role], port, *extra),
            port=port,
            log_path=logs / f"{role}.log",
            # vLLM binds its OpenMP threads to core 0 by default: spread the servers out.
            env={**VLLM_ENV, "VLLM_CPU_OMP_THREADS_BIND": str(i % cores)},
        )
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            server.wait_ready()
        yield VllmFleet(**servers, step_tag_id=step_tag_id)
    finally:
        for server in servers.values():
            with contextlib.suppress(Exception):
                server.stop()


# Fixtures of other server families (owned by their authors), when present.
with contextlib.suppress(ModuleNotFoundError):
    from tests.conformance.llamacpp_fixtures import *  # noqa: F403
