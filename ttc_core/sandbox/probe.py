"""Whether this host can give code runs a strong sandbox, and why not when it cannot.

The probe starts one real sandbox (the same command line and child setup as a run) with
each candidate interpreter, with and without a new ``/proc``, and keeps the first that
works; it needs: ``bwrap`` installed, the worker running as root (to switch each run to its
own uid), and unprivileged user namespaces for that uid (Docker's default seccomp profile
and some kernels' ``kernel.unprivileged_userns_clone=0`` refuse them). It runs once per
process and configuration (about 50 ms).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache

from ttc_core.sandbox.bwrap import BwrapLayout, bwrap_argv, child_setup, remove_box, write_box
from ttc_core.sandbox.cgroup import CgroupSupport, cgroup_support
from ttc_core.sandbox.limits import SandboxConfig, SandboxLimits
from ttc_core.sandbox.uids import lease_uid_blocking

__all__ = ["SandboxProbe", "probe_sandbox"]

_CHECK = "import sys; print('ttc-sandbox-ok', sys.version_info[:2])\n"


@dataclass(frozen=True, slots=True)
class SandboxProbe:
    """What the probe found: a layout when bubblewrap works here, else the reason."""

    layout: BwrapLayout | None
    problem: str | None
    cgroups: CgroupSupport

    @property
    def strong(self) -> bool:
        return self.layout is not None


def _candidates(config: SandboxConfig) -> list[str]:
    if config.python is not None:
        return [config.python]
    found: list[str] = []
    for path in (
        os.path.join(sys.base_prefix, "bin", "python3"),
        "/usr/bin/python3",
        "/usr/local/bin/python3",
    ):
        real = os.path.realpath(path)
        if os.path.isfile(real) and real not in found:
            found.append(real)
    return found


def _try(layout: BwrapLayout, config: SandboxConfig) -> str | None:
    """None when a sandbox with ``layout`` runs Python; else what went wrong."""
    box = write_box({"check.py": _CHECK})
    limits = SandboxLimits(wall_s=10, memory_mb=256, processes=8)
    try:
        with lease_uid_blocking(config.uid_base, config.slots) as uid:
            done = subprocess.run(
                bwrap_argv(layout, box, "check.py", 1),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=20,
                check=False,
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
                preexec_fn=child_setup(uid, limits, None),
            )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        remove_box(box)
    if done.returncode == 0 and b"ttc-sandbox-ok" in done.stdout:
        return None
    return done.stderr.decode("utf-8", "replace").strip()[-300:] or f"exit {done.returncode}"


@lru_cache(maxsize=8)
def probe_sandbox(config: SandboxConfig) -> SandboxProbe:
    """Probe once per process and configuration (blocks for the probe)."""
    cgroups = cgroup_support() if config.cgroups else CgroupSupport()
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return SandboxProbe(None, "bubblewrap (bwrap) is not installed", cgroups)
    if os.geteuid() != 0:
        problem = "the worker does not run as root, so it cannot give runs a uid of their own"
        return SandboxProbe(None, problem, cgroups)
    problem = "no Python interpreter found for the sandbox"
    for python in _candidates(config):
        for proc in (True, False):
            layout = BwrapLayout(bwrap=bwrap, python=python, proc=proc, cgroups=cgroups)
            problem = _try(layout, config) or ""
            if not problem:
                return SandboxProbe(layout, None, cgroups)
    return SandboxProbe(None, f"bubblewrap cannot start a sandbox here: {problem}", cgroups)
