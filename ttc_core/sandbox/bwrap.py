"""The bubblewrap backend: each run in fresh namespaces, as a uid of its own, limited.

For one run of ``python -I /box/<script> /box``:

* **uid**: the child switches to a dedicated host uid before exec (:mod:`.uids`), then
  bwrap (unprivileged, ``--unshare-user``) maps it to ``nobody`` (65534) inside. Host
  files keep their owners, so ``/etc/shadow`` would stay unreadable even if it were there.
* **filesystem**: a new mount namespace whose root is an empty tmpfs holding only ``/usr``
  read-only (with the ``/bin``, ``/lib``, ``/lib64`` links or binds), the interpreter's
  prefix if it lives elsewhere, a new ``/proc`` of the run's PID namespace (where the host
  allows one), a minimal ``/dev``, the run's files read-only at ``/box`` and a private
  size-bounded tmpfs at ``/tmp`` (the working directory). No ``/etc``, ``/var``, ``/run``
  (so no Postgres or other Unix sockets), no home, no project sources, no virtualenv.
* **namespaces**: ``--unshare-all`` (user, mount, PID, network with only a down loopback,
  IPC, UTS, cgroup), ``--disable-userns`` (no nested user namespaces), ``--new-session``
  (no terminal injection), ``--die-with-parent``, ``--as-pid-1`` (the interpreter is the
  PID namespace's init, so whatever it leaves behind dies with it), the environment
  cleared.
* **limits**: ``RLIMIT_AS``, ``RLIMIT_CPU``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``,
  ``RLIMIT_CORE`` per process; ``RLIMIT_NPROC`` for the uid (so for the whole tree); the
  whole tree's memory and process count in a cgroup where the host allows one
  (:mod:`.cgroup`), else the memory watchdog (:mod:`.watchdog`); the wall limit kills the
  tree (the cgroup's processes and every process of the uid).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ttc_core.sandbox.cgroup import CgroupSupport, RunCgroup
from ttc_core.sandbox.limits import SandboxConfig, SandboxLimits, rlimits_for
from ttc_core.sandbox.process import ChildRun, SandboxOutcome, run_child
from ttc_core.sandbox.uids import lease_uid
from ttc_core.sandbox.watchdog import MemoryWatchdog, kill_uid

__all__ = ["BwrapBackend", "BwrapLayout", "bwrap_argv", "child_setup", "write_box"]

#: The uid and gid a run sees itself as inside the sandbox.
INSIDE_ID = 65534
#: Processes of bwrap itself under the run's uid (the outer monitor, and one spare for
#: the moment it forks the command).
BWRAP_PROCESSES = 2
BOX = "/box"
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass(frozen=True, slots=True)
class BwrapLayout:
    """What the probe found about this host (see :mod:`ttc_core.sandbox.probe`)."""

    bwrap: str
    python: str
    #: Mount a new /proc (refused under some container runtimes' masked /proc).
    proc: bool
    cgroups: CgroupSupport


def _root_binds(python: str) -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    if not (prefix == "/usr" or prefix.startswith("/usr/")) and prefix != "/":
        args += ["--ro-bind", prefix, prefix]
    return args


def bwrap_argv(layout: BwrapLayout, box: str, script: str, tmp_mb: int) -> list[str]:
    """The command line of one run (``box``: the host directory with the run's files)."""
    argv = [
        layout.bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        # Python is the namespace's PID 1: when it exits, the kernel kills every process
        # it left behind (bwrap's own init would wait for them up to the wall limit).
        "--as-pid-1",
        "--uid",
        str(INSIDE_ID),
        "--gid",
        str(INSIDE_ID),
        "--hostname",
        "sandbox",
        "--cap-drop",
        "ALL",
        *_root_binds(layout.python),
        "--dev",
        "/dev",
        *(["--proc", "/proc"] if layout.proc else []),
        "--size",
        str(tmp_mb * 1024 * 1024),
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        box,
        BOX,
        "--chdir",
        "/tmp",
        "--clearenv",
    ]
    for name, value in ENV.items():
        argv += ["--setenv", name, value]
    return [*argv, layout.python, "-I", f"{BOX}/{script}", BOX]


def child_setup(uid: int, limits: SandboxLimits, cgroup: RunCgroup | None) -> Callable[[], None]:
    """The child's setup between fork and exec: cgroup, limits, then the uid (last, since
    joining the cgroup needs root)."""
    pairs = rlimits_for(limits, extra_processes=BWRAP_PROCESSES)

    def setup() -> None:
        if cgroup is not None:
            cgroup.join_in_child()
        for which, value in pairs:
            hard = value + 1 if which == resource.RLIMIT_CPU else value
            resource.setrlimit(which, (value, hard))
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)

    return setup


def write_box(files: Mapping[str, str]) -> str:
    """A fresh host directory holding ``files``, readable (not writable) by any uid."""
    box = tempfile.mkdtemp(prefix="ttc-code-")
    for name, text in files.items():
        path = os.path.join(box, name)
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        os.chmod(path, 0o444)
    os.chmod(box, 0o555)
    return box


def remove_box(box: str) -> None:
    with contextlib.suppress(OSError):
        os.chmod(box, 0o700)
    shutil.rmtree(box, ignore_errors=True)


class BwrapBackend:
    """Runs Python in bubblewrap (see the module docstring)."""

    name = "bwrap"
    strong = True

    def __init__(self, config: SandboxConfig, layout: BwrapLayout) -> None:
        self.config = config
        self.layout = layout

    def _cgroup(self, uid: int, limits: SandboxLimits) -> RunCgroup | None:
        support = self.layout.cgroups
        if not support.usable:
            return None
        name = f"ttc-sandbox-{uid}-{secrets.token_hex(4)}"
        memory = limits.memory_mb * 1024 * 1024
        return RunCgroup(support, name, memory, limits.processes + BWRAP_PROCESSES)

    async def run_python(
        self, files: Mapping[str, str], script: str, stdin: bytes, limits: SandboxLimits
    ) -> SandboxOutcome:
        """Run ``python -I /box/<script> /box`` with ``files`` in ``/box``."""
        async with lease_uid(self.config.uid_base, self.config.slots) as uid:
            box = await asyncio.to_thread(write_box, files)
            cgroup: RunCgroup | None = None
            watchdog: asyncio.Task[None] | None = None
            try:
                cgroup = await asyncio.to_thread(self._cgroup, uid, limits)
                guard = None
                if cgroup is None:
                    guard = MemoryWatchdog(uid, limits.memory_mb * 1024 * 1024)
                    watchdog = asyncio.ensure_future(guard.run())

                def kill_tree() -> None:
                    if cgroup is not None:
                        cgroup.kill()
                    kill_uid(uid)

                outcome = await run_child(
                    ChildRun(
                        argv=bwrap_argv(self.layout, box, script, limits.tmp_mb),
                        cwd="/",
                        env=dict(ENV),
                        stdin=stdin,
                        wall_s=limits.wall_s,
                        preexec=child_setup(uid, limits, cgroup),
                        kill_tree=kill_tree,
                    )
                )
                if cgroup is not None:
                    outcome.memory_exceeded = cgroup.memory_exceeded()
                    outcome.processes_exceeded = cgroup.processes_exceeded()
                elif guard is not None:
                    outcome.memory_exceeded = guard.exceeded
                return outcome
            finally:
                if watchdog is not None:
                    watchdog.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watchdog
                if cgroup is not None:
                    cgroup.kill()
                    cgroup.remove()
                remove_box(box)
