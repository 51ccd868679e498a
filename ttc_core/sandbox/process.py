"""Start one sandboxed process tree, feed it stdin, bound its wall time, collect its output.

Shared by the backends: they differ in the command line, the child's setup and how the
tree is killed; the waiting, reading and cleanup-on-cancel are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["ChildRun", "SandboxOutcome", "run_child"]

#: How much of stdout (the result channel) and of stderr is kept.
STDOUT_LIMIT = 1024 * 1024
STDERR_TAIL = 8 * 1024


@dataclass(slots=True)
class SandboxOutcome:
    """What one run left: exit status, output, and which limit ended it, if one did."""

    returncode: int | None
    stdout: bytes
    stderr_tail: str
    timed_out: bool = False
    #: The tree hit its memory limit (cgroup OOM kill or the watchdog).
    memory_exceeded: bool = False
    #: A fork was refused for the process limit.
    processes_exceeded: bool = False


@dataclass(frozen=True, slots=True)
class ChildRun:
    argv: Sequence[str]
    cwd: str
    env: dict[str, str]
    stdin: bytes
    wall_s: float
    #: Runs in the forked child before exec (limits, cgroup, uid): keep it allocation-free.
    preexec: Callable[[], None]
    #: Kills the whole tree (synchronously), whatever it forked.
    kill_tree: Callable[[], None]
    pass_fds: tuple[int, ...] = ()


async def _read_head(stream: asyncio.StreamReader | None, limit: int) -> bytes:
    """The first ``limit`` bytes of ``stream``; the rest is drained and dropped."""
    if stream is None:
        return b""
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return bytes(kept)


async def _read_tail(stream: asyncio.StreamReader | None, limit: int) -> bytes:
    """The last ``limit`` bytes of ``stream``."""
    if stream is None:
        return b""
    kept = bytearray()
    while chunk := await stream.read(65536):
        kept += chunk
        if len(kept) > limit:
            del kept[: len(kept) - limit]
    return bytes(kept)


async def run_child(
    run: ChildRun, *, started: Callable[[int], None] | None = None
) -> SandboxOutcome:
    """Run to exit or to the wall limit; on cancel the tree is killed before re-raising.

    ``started`` is called with the child's pid (its process group) once it runs.
    """
    process = await asyncio.create_subprocess_exec(
        *run.argv,
        cwd=run.cwd,
        env=run.env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=run.preexec,
        pass_fds=run.pass_fds,
    )
    if started is not None:
        started(process.pid)
    out_task = asyncio.ensure_future(_read_head(process.stdout, STDOUT_LIMIT))
    err_task = asyncio.ensure_future(_read_tail(process.stderr, STDERR_TAIL))
    timed_out = False
    try:
        assert process.stdin is not None
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            process.stdin.write(run.stdin)
            await process.stdin.drain()
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), run.wall_s)
        except TimeoutError:
            timed_out = True
        await asyncio.to_thread(run.kill_tree)  # whatever is left, timed out or not
        await process.wait()
        # The pipes close when the last holder is gone; the tree is dead, but give up on
        # them quickly rather than trust that.
        done, pending = await asyncio.wait({out_task, err_task}, timeout=2.0)
        for task in pending:
            task.cancel()
        out = out_task.result() if out_task in done else b""
        err = err_task.result() if err_task in done else b""
    except BaseException:  # cancelled (or worse): leave nothing running behind
        run.kill_tree()
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        for task in (out_task, err_task):
            task.cancel()
        raise
    return SandboxOutcome(
        returncode=process.returncode,
        stdout=out,
        stderr_tail=err.decode("utf-8", errors="replace"),
        timed_out=timed_out,
    )
