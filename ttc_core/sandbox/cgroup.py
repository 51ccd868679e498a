"""A cgroup per sandboxed run: memory and process count of the whole program tree.

A process joins its cgroup in the forked child before it execs the sandbox, so every
process the program starts is born inside it and no fork can leave it (a cgroup is left
only by writing to another cgroup's ``cgroup.procs``, which the sandbox's uid cannot).

Both layouts are handled: cgroup v2 (one hierarchy, ``memory.max``, ``pids.max``,
``cgroup.kill``; usable only where the controllers are enabled for the worker's cgroup's
children, i.e. delegated) and cgroup v1 (one hierarchy per controller,
``memory.limit_in_bytes``, ``pids.max``), as on hosts still booted in hybrid mode. The
run's cgroup is created under the worker's own, so the worker's limits still apply above.
:func:`cgroup_support` says what this host allows; without it the sandbox falls back to
the watchdog and ``RLIMIT_NPROC``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["CgroupSupport", "RunCgroup", "cgroup_support"]

_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True, slots=True)
class CgroupSupport:
    """Where run cgroups can be made: a parent directory per controller (None: not here)."""

    memory: str | None = None
    pids: str | None = None
    #: ``v2`` or ``v1`` per controller.
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.memory is not None and self.pids is not None


def _own_paths() -> dict[str, str]:
    """Controller (or ``""`` for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup", encoding="ascii") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    return paths


def _writable_parent(base: str, path: str, probe_file: str) -> str | None:
    """A directory under ``base`` (this process's cgroup, else the mount root) where a
    child cgroup can be made and ``probe_file`` set; None when neither works."""
    for parent in (os.path.join(base, path.lstrip("/")), base):
        name = os.path.join(parent, f"ttc-probe-{os.getpid()}")
        try:
            os.mkdir(name)
        except OSError:
            continue
        try:
            ok = os.path.exists(os.path.join(name, probe_file))
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(name)
        if ok:
            return parent
    return None


@lru_cache(maxsize=1)
def cgroup_support() -> CgroupSupport:
    """What this host lets ttc do with cgroups (probed once per process)."""
    paths = _own_paths()
    versions: dict[str, str] = {}
    found: dict[str, str | None] = {"memory": None, "pids": None}
    unified = _ROOT if os.path.exists(os.path.join(_ROOT, "cgroup.controllers")) else None
    if unified is not None and "" in paths:
        parent = os.path.join(unified, paths[""].lstrip("/"))
        try:
            with open(os.path.join(parent, "cgroup.subtree_control"), encoding="ascii") as f:
                enabled = f.read().split()
        except OSError:
            enabled = []
        for controller, probe_file in (("memory", "memory.max"), ("pids", "pids.max")):
            if controller in enabled:
                where = _writable_parent(unified, paths[""], probe_file)
                if where is not None:
                    found[controller], versions[controller] = where, "v2"
    for controller, probe_file in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max")):
        base = os.path.join(_ROOT, controller)
        if found[controller] is None and controller in paths and os.path.isdir(base):
            where = _writable_parent(base, paths[controller], probe_file)
            if where is not None:
                found[controller], versions[controller] = where, "v1"
    return CgroupSupport(memory=found["memory"], pids=found["pids"], versions=versions)


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)


def _read_counters(path: str) -> dict[str, int]:
    counters: dict[str, int] = {}
    with contextlib.suppress(OSError), open(path, encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                counters[parts[0]] = int(parts[1])
    return counters


def _read_int(path: str) -> int:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True  # gone


class RunCgroup:
    """One run's cgroup(s): create, join (in the child), inspect, kill, remove."""

    def __init__(self, support: CgroupSupport, name: str, memory_bytes: int, pids: int) -> None:
        self.dirs: dict[str, str] = {}
        self.versions = support.versions
        self.memory_bytes = memory_bytes
        try:
            for controller, parent in (("memory", support.memory), ("pids", support.pids)):
                assert parent is not None
                path = os.path.join(parent, name)
                if path not in self.dirs.values():
                    os.mkdir(path)
                self.dirs[controller] = path
            self._limit(memory_bytes, pids)
        except BaseException:
            self.remove()
            raise
        #: ``cgroup.procs`` files the child writes ``0`` (itself) into before exec.
        self.procs_files = sorted({os.path.join(d, "cgroup.procs") for d in self.dirs.values()})

    def _limit(self, memory_bytes: int, pids: int) -> None:
        memory, pid_dir = self.dirs["memory"], self.dirs["pids"]
        if self.versions.get("memory") == "v2":
            _write(os.path.join(memory, "memory.max"), str(memory_bytes))
            with contextlib.suppress(OSError):  # no swap for the run either
                _write(os.path.join(memory, "memory.swap.max"), "0")
        else:
            _write(os.path.join(memory, "memory.limit_in_bytes"), str(memory_bytes))
            with contextlib.suppress(OSError):  # absent without swap accounting
                _write(os.path.join(memory, "memory.memsw.limit_in_bytes"), str(memory_bytes))
        _write(os.path.join(pid_dir, "pids.max"), str(pids))

    def join_in_child(self) -> None:
        """Move the calling process in (call between fork and exec: no allocation)."""
        for path in self.procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    def memory_exceeded(self) -> bool:
        """Whether the tree hit its memory limit: an OOM kill, a failed charge, or a peak
        at the limit (a tree at its limit may thrash in reclaim without an OOM kill)."""
        memory = self.dirs["memory"]
        if self.versions.get("memory") == "v2":
            events = _read_counters(os.path.join(memory, "memory.events"))
            peak = _read_int(os.path.join(memory, "memory.peak"))
            return events.get("oom_kill", 0) > 0 or events.get("max", 0) > 0 or self._at(peak)
        control = _read_counters(os.path.join(memory, "memory.oom_control"))
        failcnt = _read_int(os.path.join(memory, "memory.failcnt"))
        peak = _read_int(os.path.join(memory, "memory.max_usage_in_bytes"))
        return control.get("oom_kill", 0) > 0 or failcnt > 0 or self._at(peak)

    def _at(self, peak: int) -> bool:
        return peak >= self.memory_bytes * 0.98

    def processes_exceeded(self) -> bool:
        """Whether a fork was refused for the process limit."""
        return _read_counters(os.path.join(self.dirs["pids"], "pids.events")).get("max", 0) > 0

    def pids(self) -> list[int]:
        """Processes in the cgroup, zombies left out (they wait only to be reaped)."""
        found: set[int] = set()
        for path in self.procs_files:
            with contextlib.suppress(OSError), open(path, encoding="ascii") as f:
                found.update(int(line) for line in f if line.strip())
        return sorted(pid for pid in found if not _is_zombie(pid))

    def kill(self, deadline_s: float = 2.0) -> None:
        """SIGKILL every process in the cgroup, until it is empty or ``deadline_s``."""
        for directory in self.dirs.values():
            with contextlib.suppress(OSError):
                _write(os.path.join(directory, "cgroup.kill"), "1")  # v2: atomic
        end = time.monotonic() + deadline_s
        while (pids := self.pids()) and time.monotonic() < end:
            # v1 has no cgroup.kill: a freshly forked child may appear after the read, so
            # read again until none is left (the pids limit bounds how many can appear).
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    def remove(self) -> None:
        """Remove the cgroup directories (empty ones; retried while the last exit)."""
        for directory in set(self.dirs.values()):
            for _ in range(200):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while a killed process is still being reaped
                    time.sleep(0.01)
