"""The ``unsafe-none`` backend: a plain subprocess with per-process limits only.

No namespaces and no uid switch: the program runs as the worker's uid and can read and
write what the worker can, open sockets to the database and the broker, and fork past the
memory limit. Only for operators whose tenants are all trusted, and only when they say so
(``TTC_CODE_SANDBOX=unsafe-none``); ttc never falls back to it by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping

from ttc_core.sandbox.bwrap import ENV, remove_box, write_box
from ttc_core.sandbox.limits import SandboxConfig, SandboxLimits, rlimits_for
from ttc_core.sandbox.process import ChildRun, SandboxOutcome, run_child

__all__ = ["UnsafeNoneBackend"]


def _setup(limits: SandboxLimits) -> Callable[[], None]:
    # RLIMIT_NPROC counts every process of the worker's uid (and root ignores it): leave
    # it out rather than make the worker's own forks fail.
    pairs = [p for p in rlimits_for(limits) if p[0] != resource.RLIMIT_NPROC]

    def setup() -> None:
        for which, value in pairs:
            hard = value + 1 if which == resource.RLIMIT_CPU else value
            resource.setrlimit(which, (value, hard))

    return setup


class UnsafeNoneBackend:
    """Runs Python as a plain subprocess (see the module docstring)."""

    name = "unsafe-none"
    strong = False

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config

    async def run_python(
        self, files: Mapping[str, str], script: str, stdin: bytes, limits: SandboxLimits
    ) -> SandboxOutcome:
        box = await asyncio.to_thread(write_box, files)
        cwd = tempfile.mkdtemp(prefix="ttc-code-tmp-")
        pid: list[int] = []

        def kill_tree() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid[0], signal.SIGKILL) if pid else None

        try:
            run = ChildRun(
                argv=[sys.executable, "-I", os.path.join(box, script), box],
                cwd=cwd,
                env=dict(ENV, HOME=cwd),
                stdin=stdin,
                wall_s=limits.wall_s,
                preexec=_setup(limits),
                kill_tree=kill_tree,
            )
            return await run_child(run, started=pid.append)
        finally:
            remove_box(box)
            remove_box(cwd)
