"""What one sandboxed run may use, and the resource limits each process gets.

Per-process ``setrlimit`` limits bound one process; a fork escapes them by multiplying.
What bounds the whole program tree is elsewhere: the dedicated uid (``RLIMIT_NPROC`` counts
every process of a uid, and a run has its uid to itself, see :mod:`ttc_core.sandbox.uids`),
a cgroup (``memory`` and ``pids``, :mod:`ttc_core.sandbox.cgroup`) where this host lets ttc
create one, else a watchdog summing the resident memory of the uid's processes
(:mod:`ttc_core.sandbox.watchdog`).
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

__all__ = ["SandboxConfig", "SandboxLimits", "rlimits_for"]


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Operator settings of the code sandbox (see ``Settings.code_sandbox*``)."""

    #: ``auto``: bubblewrap when the probe finds it strong, else refuse code runs;
    #: ``bwrap``: require it; ``unsafe-none``: plain subprocesses (trusted tenants only).
    mode: str = "auto"
    #: First host uid of the dedicated sandbox uids; one uid per concurrent run.
    uid_base: int = 61000
    #: How many dedicated uids (runs at once on this host, across worker processes).
    slots: int = 16
    #: Processes (and threads) the program tree may hold at once.
    max_processes: int = 64
    #: Size of the private writable ``/tmp`` (a tmpfs), MB.
    tmp_mb: int = 64
    #: Largest file the program may write, bytes (``RLIMIT_FSIZE``).
    max_file_bytes: int = 16 * 1024 * 1024
    #: Open files per process (``RLIMIT_NOFILE``).
    max_open_files: int = 64
    #: The interpreter inside the sandbox; ``None``: probe (this one, then /usr/bin/python3).
    python: str | None = None
    #: Use a cgroup per run where the host allows (off: RLIMIT_NPROC and the watchdog).
    cgroups: bool = True


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """The limits of one run."""

    #: Wall-clock limit: the tree is killed after this.
    wall_s: float
    #: Memory of the whole program tree, MB (also each process's address space).
    memory_mb: int
    #: Processes of the tree at once.
    processes: int = 64
    max_file_bytes: int = 16 * 1024 * 1024
    max_open_files: int = 64
    tmp_mb: int = 64

    @property
    def cpu_s(self) -> int:
        """CPU seconds per process (``RLIMIT_CPU``): the wall limit plus one."""
        return math.ceil(self.wall_s) + 1


def rlimits_for(limits: SandboxLimits, *, extra_processes: int = 0) -> list[tuple[int, int]]:
    """``(resource, value)`` pairs to set in the child before it execs.

    ``extra_processes``: processes of the sandbox tool itself under the same uid (bwrap
    keeps a monitor and a PID-1 reaper), added to ``RLIMIT_NPROC``.
    """
    memory = limits.memory_mb * 1024 * 1024
    return [
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_NOFILE, limits.max_open_files),
        (resource.RLIMIT_FSIZE, limits.max_file_bytes),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, limits.processes + extra_processes),
    ]
