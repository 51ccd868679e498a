"""The processes of a uid, found through /proc: their memory, and killing them all.

Used where the host gives ttc no memory cgroup: every process of a run has the run's
dedicated uid (:mod:`ttc_core.sandbox.uids`), which a fork inherits and cannot drop, so
summing the resident memory of that uid's processes bounds the whole tree. The watchdog
samples every 20 ms, so a tree can overshoot by what it allocates in that time (each
process stays under ``RLIMIT_AS``, and their number under ``RLIMIT_NPROC``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

__all__ = ["MemoryWatchdog", "kill_uid", "pids_of_uid", "rss_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _real_uid(pid: str) -> int | None:
    """The real uid of a live process (None for zombies: they hold nothing and wait only
    for their parent to reap them)."""
    uid: int | None = None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                    return None
                if line.startswith("Uid:"):
                    uid = int(line.split()[1])
                    break
    except (OSError, ValueError, IndexError):
        return None
    return uid


def pids_of_uid(uid: int) -> list[int]:
    """Live (not zombie) processes whose real uid is ``uid``."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _real_uid(p) == uid]


def rss_bytes(pids: list[int]) -> int:
    """Summed resident memory of ``pids`` (those that exited count zero)."""
    total = 0
    for pid in pids:
        with (
            contextlib.suppress(OSError, ValueError, IndexError),
            open(f"/proc/{pid}/statm", encoding="ascii") as f,
        ):
            total += int(f.read().split()[1]) * _PAGE
    return total


def kill_uid(uid: int, deadline_s: float = 2.0) -> None:
    """SIGKILL every process of ``uid`` until none is left (or ``deadline_s``)."""
    end = time.monotonic() + deadline_s
    while (pids := pids_of_uid(uid)) and time.monotonic() < end:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


class MemoryWatchdog:
    """Kills a uid's processes when their summed RSS passes ``limit_bytes``."""

    def __init__(self, uid: int, limit_bytes: int, interval_s: float = 0.02) -> None:
        self.uid = uid
        self.limit_bytes = limit_bytes
        self.interval_s = interval_s
        #: Set once the limit was passed and the tree killed.
        self.exceeded = False
        self.peak_bytes = 0

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            used = await asyncio.to_thread(lambda: rss_bytes(pids_of_uid(self.uid)))
            self.peak_bytes = max(self.peak_bytes, used)
            if used > self.limit_bytes:
                self.exceeded = True
                await asyncio.to_thread(kill_uid, self.uid)
            await asyncio.sleep(self.interval_s)
