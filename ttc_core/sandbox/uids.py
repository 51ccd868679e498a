"""Dedicated host uids for sandboxed runs, one run per uid at a time on this host.

Each run gets a uid of its own (``uid_base + slot``), leased through an ``flock`` on a
file per slot, so two worker processes on one host never share one. That makes three
things hold that a shared uid (say ``nobody``) would break: ``RLIMIT_NPROC``, which the
kernel counts per uid, bounds this run's tree and no one else's; the run's processes are
exactly the processes of its uid (what the watchdog sums and the cleanup kills, and a fork
cannot change its uid); and the program cannot signal or ptrace another run's processes.
The uids need no passwd entry. Leftovers of a crashed run are killed when the slot is
next leased.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator

from ttc_core.sandbox.watchdog import kill_uid

__all__ = ["lease_uid", "lease_uid_blocking"]


def _lock_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), f"ttc-sandbox-slots-{os.geteuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _try_lease(uid_base: int, slots: int) -> tuple[int, int] | None:
    """(uid, locked fd) of a free slot, or None when all are taken."""
    directory = _lock_dir()
    for slot in range(slots):
        fd = os.open(os.path.join(directory, f"{uid_base + slot}.lock"), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid_base + slot, fd
    return None


@contextlib.asynccontextmanager
async def lease_uid(uid_base: int, slots: int) -> AsyncIterator[int]:
    """A uid of its own for one run, waiting while every slot is busy."""
    while (leased := await asyncio.to_thread(_try_lease, uid_base, slots)) is None:
        await asyncio.sleep(0.05)
    uid, fd = leased
    try:
        await asyncio.to_thread(kill_uid, uid)  # a crashed run's leftovers
        yield uid
    finally:
        await asyncio.to_thread(kill_uid, uid)
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def lease_uid_blocking(uid_base: int, slots: int) -> Iterator[int]:
    """:func:`lease_uid` for synchronous callers (the probe)."""
    while (leased := _try_lease(uid_base, slots)) is None:
        time.sleep(0.05)
    uid, fd = leased
    try:
        kill_uid(uid)
        yield uid
    finally:
        kill_uid(uid)
        os.close(fd)
