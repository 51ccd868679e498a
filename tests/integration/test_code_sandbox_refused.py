"""Where no strong sandbox can start, code verification is refused at submission with the
documented 422 naming ``verifier.kind``, on the real stack, and nothing is written.

Two hosts, reproduced natively (no Docker engine here):

- an image without bubblewrap;
- the compose image under Docker's default seccomp profile: ``bwrap`` is installed but
  cannot create its namespaces, and fails as it does there
  (``bwrap: No permissions to creating new namespace...``).

The README's security section names the settings that make the compose image strong
(``security_opt``) and the explicit unsafe mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.helpers import REDIS_BASE, fresh_postgres
from ttc_cli.stack import run_stack

pytestmark = pytest.mark.integration

REDIS_DB = 4

#: What bwrap prints under Docker's default seccomp profile (unshare(CLONE_NEWUSER) denied).
SECCOMP_BWRAP = """#!/bin/sh
echo 'bwrap: No permissions to creating new namespace, likely because the kernel does not \
allow non-privileged user namespaces. On e.g. debian this can be enabled with \
"sysctl kernel.unprivileged_userns_clone=1".' >&2
exit 1
"""

CODE_JOB = {
    "strategy": "best_of_n",
    "endpoint": "sim",
    "prompt": "write add(a, b)",
    "reference": "unused",
    "params": {"n": 1},
    "verifier": {"kind": "code", "tests": "def test_a():\n    assert add(1, 2) == 3\n"},
}


def _path_without_bwrap(tmp: Path, fake: str | None) -> str:
    """``PATH`` with every directory that holds a ``bwrap`` replaced by a copy of it
    without one (links to the rest), and ``fake`` as ``bwrap`` first, if given."""
    dirs = []
    for i, entry in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        folder = Path(entry)
        if not (folder / "bwrap").exists():
            dirs.append(entry)
            continue
        copy = tmp / f"path{i}"
        copy.mkdir()
        for item in folder.iterdir():
            if item.name != "bwrap":
                (copy / item.name).symlink_to(item)
        dirs.append(str(copy))
    if fake is not None:
        bin_dir = tmp / "fake"
        bin_dir.mkdir()
        script = bin_dir / "bwrap"
        script.write_text(fake)
        script.chmod(0o755)
        dirs.insert(0, str(bin_dir))
    return os.pathsep.join(dirs)


@pytest.fixture(params=["no-bwrap", "seccomp"], scope="module")
def weak_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp(request.param)
    fake = SECCOMP_BWRAP if request.param == "seccomp" else None
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    with (
        fresh_postgres() as url,
        run_stack(
            database_url=url,
            broker_url=broker,
            log_dir=tmp / "logs",
            extra_env={"PATH": _path_without_bwrap(tmp, fake), "TTC_CODE_SANDBOX": "auto"},
        ) as stack,
    ):
        yield stack.api_url


def test_a_code_job_is_refused_with_the_documented_422(weak_stack: str) -> None:
    with httpx.Client(base_url=weak_stack, timeout=30) as client:
        resp = client.post("/v1/jobs", json=CODE_JOB)
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        problem = resp.json()
        assert problem["field"] == "verifier.kind", problem
        # Says why, in words, and where the operator reads what to do.
        assert "strong sandbox" in problem["detail"], problem
        assert "bubblewrap" in problem["detail"] or "bwrap" in problem["detail"], problem
        assert "Security section" in problem["detail"], problem
        assert client.get("/v1/jobs").json()["data"] == []  # nothing written
        # Everything else still runs there.
        plain = {**CODE_JOB, "verifier": {"kind": "exact"}, "prompt": "6 x 7?", "reference": "42"}
        assert client.post("/v1/jobs", json=plain).status_code == 202
