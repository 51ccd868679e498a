"""Code: run the output's program against the job's unit tests in a sandboxed subprocess.

The program is the output's last fenced ```python (or ```py) block, else its last untagged
fenced block, else the whole text (an unterminated final ```python block counts, for
outputs cut off at ``max_tokens``). The tests are Python using plain ``assert``: either
``def test_*()`` functions, each run separately (module-level code is setup; if it fails,
every test fails), or, without any, top-level asserts that count as one test. The tests
see the program's names, and ``import solution`` / ``from solution import f`` work too.

``score`` = the fraction of tests that passed, ``correct`` = all passed; ``feedback`` is the
first failure (the test, the failing ``assert`` line or the exception, at most 500
characters), ``"timed out after 5s"``, or ``"memory limit (512 MB) exceeded in test_x"``.
``answer`` is ``None`` (programs are not voted on).

Sandbox, for each run:

* a fresh temporary directory as the working directory (removed afterwards) holding
  ``solution.py``, ``tests.py`` and the runner, read by the runner *before* the program
  runs; ``python -I`` (isolated: no user site, no ``PYTHON*`` variables, no script dir on
  ``sys.path``); an environment with only ``PATH``; stdin empty;
* resource limits set in ``preexec_fn``: ``RLIMIT_AS`` (memory), ``RLIMIT_CPU``
  (timeout + 1 s), ``RLIMIT_NOFILE`` (64), ``RLIMIT_FSIZE`` (16 MiB per file),
  ``RLIMIT_CORE`` (0); a new session, killed as a process group at the wall-clock timeout;
* no network. Where user namespaces work (probed once per process, see
  :func:`sandbox_mode`), the run is wrapped in ``unshare --net --map-root-user --pid --fork
  --kill-child``: a network namespace with no interfaces up (every connection fails, even to
  127.0.0.1) and a PID namespace (``/bin/sh`` is its PID 1, python an ordinary process), so
  processes the program leaves behind die with it. This is the mode that applies on the
  development machine this was written on (root in a container, util-linux 2.38).
  Elsewhere (``unshare`` missing or refused, e.g. Docker without user namespaces) a guard at
  the top of the runner replaces ``socket.socket`` (internet sockets) and
  ``socket.create_connection`` with ones that raise: enough against accidents, not against
  a program that imports ``_socket`` on purpose.

Results travel on the runner's own copy of stdout, each line prefixed with a random nonce
handed over on stdin; the program's prints go to stderr. This keeps honest programs from
corrupting the report; it is not a defence against a program written to forge results
(it shares the runner's process).

At most :data:`MAX_PARALLEL_RUNS` (``os.cpu_count()``) runs at once per event loop.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from ttc_core.verifiers.base import Candidate, Verdict, VerifierError

__all__ = [
    "MAX_MEMORY_MB",
    "MAX_TESTS_BYTES",
    "MAX_TIMEOUT_S",
    "CodeVerifier",
    "RunReport",
    "check_tests",
    "extract_program",
    "run_program",
    "sandbox_mode",
]

MAX_TESTS_BYTES = 100 * 1024
MAX_TIMEOUT_S = 60.0
MAX_MEMORY_MB = 4096
#: Runs in flight at once per event loop (read when a loop first runs code).
MAX_PARALLEL_RUNS = os.cpu_count() or 1
#: Longest feedback message.
MAX_FEEDBACK_CHARS = 500
#: Largest file the program may write, in bytes.
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_OPEN_FILES = 64
#: How much of the result channel and of stderr is kept.
_MAX_REPORT_BYTES = 1024 * 1024
_STDERR_TAIL_BYTES = 8 * 1024

SandboxMode = Literal["unshare", "guard"]

_UNSHARE_FLAGS = ("--net", "--map-root-user", "--pid", "--fork", "--kill-child")
# sh stays PID 1 of the namespace (and python an ordinary process that signals reach);
# "; exit $?" keeps the shell from exec-ing python in its place; the shell's PWD is dropped.
_SH_WRAPPER = ("/bin/sh", "-c", 'unset PWD; "$0" "$@"; exit $?')

_FENCED_PY = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)
_FENCED_ANY = re.compile(r"```[ \t]*\r?\n(.*?)```", re.DOTALL)
_UNTERMINATED_PY = re.compile(
    r"```[ \t]*(?:python3?|py)[ \t]*\r?\n((?:(?!```).)*)\Z", re.DOTALL | re.IGNORECASE
)

# ---------------------------------------------------------------------------------------
# The runner (a separate script, run with python -I in the sandbox)
# ---------------------------------------------------------------------------------------

_GUARD = r"""
import socket as _socket_module


def _ttc_no_network(*args, **kwargs):
    raise OSError(101, "network access is disabled in this sandbox")


class _TTCGuardedSocket(_socket_module.socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family != _socket_module.AF_UNIX:
            _ttc_no_network()
        super().__init__(family, type, proto, fileno)


_socket_module.socket = _TTCGuardedSocket
_socket_module.SocketType = _TTCGuardedSocket
_socket_module.create_connection = _ttc_no_network
del _socket_module
"""

_RUNNER = r'''
import ast
import inspect
import json
import linecache
import os
import sys
import traceback
import types


def _main():
    nonce = sys.stdin.readline().strip()
    results = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # the program's prints go to stderr
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)

    def emit(**event):
        try:
            line = json.dumps(event)
        except Exception:
            line = json.dumps({"event": event.get("event"), "name": event.get("name"),
                               "ok": False, "error": "unreportable error"})
        results.write(nonce + " " + line + "\n")
        results.flush()

    def read(name):
        with open(name, encoding="utf-8") as f:
            text = f.read()
        linecache.cache[name] = (len(text), None, text.splitlines(True), name)
        return text

    program, tests = read("solution.py"), read("tests.py")
    names = []
    for node in ast.parse(tests, "tests.py").body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
            node.name.startswith("test_") or node.name == "test"
        ):
            if node.name in names:
                names.remove(node.name)
            names.append(node.name)
    emit(event="plan", tests=names or ["<tests>"])

    def describe(exc):
        """(kind, message) for an exception raised by the program or a test."""
        if isinstance(exc, MemoryError):
            return "memory", "MemoryError"
        where = ""
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename in ("tests.py", "solution.py"):
                where = f"{frame.filename} line {frame.lineno}"
                source = (frame.line or "").strip()
                break
        else:
            source = ""
        if isinstance(exc, AssertionError):
            message = str(exc)
            if source.startswith("assert"):
                text = source if not message or message in source else f"{source}: {message}"
            else:
                text = f"AssertionError: {message}" if message else "AssertionError"
            return "assert", text + (f" ({where})" if where else "")
        if isinstance(exc, SyntaxError) and exc.filename in ("tests.py", "solution.py"):
            return "error", f"SyntaxError: {exc.msg} ({exc.filename} line {exc.lineno})"
        if isinstance(exc, SystemExit):
            return "error", f"the program called exit({exc.code!r})"
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return "error", text + (f" ({where})" if where else "")

    module = types.ModuleType("solution")
    module.__file__ = "solution.py"
    sys.modules["solution"] = module
    emit(event="start", name="<program>")
    try:
        exec(compile(program, "solution.py", "exec"), module.__dict__)
    except BaseException as exc:
        kind, error = describe(exc)
        emit(event="program", ok=False, kind=kind, error=error)
        emit(event="done")
        return
    emit(event="program", ok=True)

    namespace = dict(module.__dict__)
    namespace["__name__"] = "tests"
    namespace["__file__"] = "tests.py"
    emit(event="start", name="<module>" if names else "<tests>")
    try:
        exec(compile(tests, "tests.py", "exec"), namespace)
    except BaseException as exc:
        kind, error = describe(exc)
        if not names:
            emit(event="test", name="<tests>", ok=False, kind=kind, error=error)
        else:
            for name in names:
                emit(event="test", name=name, ok=False, kind=kind,
                     error="the tests' module code failed: " + error)
        emit(event="done")
        return
    if not names:
        emit(event="test", name="<tests>", ok=True)
        emit(event="done")
        return
    for name in names:
        emit(event="start", name=name)
        function = namespace.get(name)
        try:
            if not callable(function):
                raise TypeError(f"{name} is not a function")
            if inspect.iscoroutinefunction(function):
                import asyncio

                asyncio.run(function())
            else:
                function()
        except BaseException as exc:
            kind, error = describe(exc)
            emit(event="test", name=name, ok=False, kind=kind, error=error)
        else:
            emit(event="test", name=name, ok=True)
    emit(event="done")


_main()
sys.stderr.flush()
os._exit(0)  # skip the program's atexit handlers and non-daemon threads
'''


# ---------------------------------------------------------------------------------------
# Extraction and checks
# ---------------------------------------------------------------------------------------


def extract_program(text: str) -> str:
    """The program in a model's output (see the module docstring)."""
    for pattern in (_FENCED_PY, _FENCED_ANY):
        blocks = pattern.findall(text)
        if blocks:
            return str(blocks[-1])
    unterminated = _UNTERMINATED_PY.search(text)
    if unterminated is not None:
        return unterminated.group(1)
    return text


def check_tests(tests: str) -> str:
    """``tests`` if it is at most 100 KB of Python that parses; else ``ValueError``."""
    size = len(tests.encode("utf-8", errors="surrogatepass"))
    if size > MAX_TESTS_BYTES:
        raise ValueError(f"tests are {size} bytes; at most {MAX_TESTS_BYTES} are allowed")
    if not tests.strip():
        raise ValueError("tests are empty")
    try:
        ast.parse(tests, "tests.py")
    except SyntaxError as exc:
        raise ValueError(f"tests do not compile: {exc.msg} (line {exc.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(f"tests do not compile: {exc}") from None
    return tests


def _shorten(text: str, limit: int = MAX_FEEDBACK_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------
# The sandbox
# ---------------------------------------------------------------------------------------


def _probe_unshare() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None or not os.path.exists(_SH_WRAPPER[0]):
        return False
    try:
        done = subprocess.run(
            [unshare, *_UNSHARE_FLAGS, *_SH_WRAPPER, sys.executable, "-I", "-c", "pass"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@lru_cache(maxsize=1)
def sandbox_mode() -> SandboxMode:
    """``"unshare"`` when network and PID namespaces work here, else ``"guard"`` (cached).

    Blocks for the probe (tens of milliseconds) on the first call only.
    """
    return "unshare" if _probe_unshare() else "guard"


def _limits(timeout_s: float, memory_mb: int) -> Any:
    """The ``preexec_fn`` that applies the resource limits in the child."""
    memory = memory_mb * 1024 * 1024
    cpu = math.ceil(timeout_s) + 1

    def apply() -> None:  # runs in the forked child before exec: keep it minimal
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_OPEN_FILES, MAX_OPEN_FILES))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


_SEMAPHORES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _semaphore() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    semaphore = _SEMAPHORES.get(loop)
    if semaphore is None:
        semaphore = _SEMAPHORES[loop] = asyncio.Semaphore(max(1, MAX_PARALLEL_RUNS))
    return semaphore


@dataclass(slots=True)
class RunReport:
    """What one sandboxed run reported."""

    tests: list[str] = field(default_factory=list)
    #: test name -> (passed, kind, error); kind is "assert", "error" or "memory".
    results: dict[str, tuple[bool, str, str]] = field(default_factory=dict)
    program_error: tuple[str, str] | None = None
    current: str | None = None
    done: bool = False
    timed_out: bool = False
    returncode: int | None = None
    stderr_tail: str = ""

    @property
    def passed(self) -> int:
        return sum(1 for ok, _, _ in self.results.values() if ok)


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


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _remove_tree(path: str) -> None:
    """Remove a run's directory, even where the program took permissions away."""

    def retry(function: Any, failed: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            os.chmod(failed, 0o700)
            function(failed)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)


def _parse_report(report: RunReport, raw: bytes, nonce: str) -> None:
    prefix = nonce + " "
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line.startswith(prefix):
            continue
        try:
            event = json.loads(line[len(prefix) :])
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        kind = event.get("event")
        if kind == "plan" and isinstance(event.get("tests"), list):
            report.tests = [str(t) for t in event["tests"]]
        elif kind == "program":
            report.current = None
            if not event.get("ok"):
                report.program_error = (str(event.get("kind")), str(event.get("error")))
        elif kind == "start":
            report.current = str(event.get("name"))
        elif kind == "test":
            name = str(event.get("name"))
            report.results[name] = (
                bool(event.get("ok")),
                str(event.get("kind") or ""),
                str(event.get("error") or ""),
            )
            report.current = None
        elif kind == "done":
            report.done = True
            report.current = None


async def run_program(
    program: str,
    tests: str,
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    mode: SandboxMode | None = None,
) -> RunReport:
    """Run ``program`` then ``tests`` in the sandbox; what the runner reported.

    ``mode``: ``None`` for :func:`sandbox_mode`'s choice.
    """
    if mode is None:
        mode = await asyncio.to_thread(sandbox_mode)
    runner = (_GUARD if mode == "guard" else "") + _RUNNER
    nonce = secrets.token_hex(16)
    async with _semaphore():
        workdir = tempfile.mkdtemp(prefix="ttc-code-")
        try:
            for name, text in (("solution.py", program), ("tests.py", tests)):
                with open(os.path.join(workdir, name), "w", encoding="utf-8") as f:
                    f.write(text)
            with open(os.path.join(workdir, "_runner.py"), "w", encoding="utf-8") as f:
                f.write(runner)
            command: list[str] = [sys.executable, "-I", "_runner.py"]
            if mode == "unshare":
                unshare = shutil.which("unshare") or "unshare"
                command = [unshare, *_UNSHARE_FLAGS, *_SH_WRAPPER, *command]
            return await _execute(command, workdir, nonce, timeout_s, memory_mb)
        finally:
            await asyncio.to_thread(_remove_tree, workdir)


async def _execute(
    command: list[str], workdir: str, nonce: str, timeout_s: float, memory_mb: int
) -> RunReport:
    report = RunReport()
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=workdir,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_limits(timeout_s, memory_mb),
    )
    out_task = asyncio.ensure_future(_read_head(process.stdout, _MAX_REPORT_BYTES))
    err_task = asyncio.ensure_future(_read_tail(process.stderr, _STDERR_TAIL_BYTES))
    try:
        assert process.stdin is not None
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            process.stdin.write(nonce.encode() + b"\n")
            await process.stdin.drain()
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            report.timed_out = True
            _kill_group(process.pid)
            await process.wait()
        _kill_group(process.pid)  # whatever the program left behind in its group
        # Pipes close when the last holder exits; a process that left the group may hold
        # them (without a PID namespace): give up on them quickly.
        done, pending = await asyncio.wait({out_task, err_task}, timeout=2.0)
        for task in pending:
            task.cancel()
        raw = out_task.result() if out_task in done else b""
        err = err_task.result() if err_task in done else b""
    except BaseException:  # cancelled (or worse): leave nothing running behind
        _kill_group(process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        for task in (out_task, err_task):
            task.cancel()
        raise
    report.returncode = process.returncode
    report.stderr_tail = err.decode("utf-8", errors="replace")
    _parse_report(report, raw, nonce)
    return report


# ---------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------

_MEMORY_HINTS = ("MemoryError", "Cannot allocate memory", "out of memory", "std::bad_alloc")


def _signal_of(returncode: int | None) -> int | None:
    """The signal that ended the run: negative codes (direct child), 128+N (via sh)."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if returncode > 128:
        return returncode - 128
    return None


_PLACES = {
    "<program>": " while loading the program",
    "<module>": " in the tests' module code",
    "<tests>": " in the tests",
}


def _crash_reason(report: RunReport, timeout_s: float, memory_mb: int) -> str:
    """Why the run ended before reporting every test."""
    where = _PLACES.get(report.current or "", f" in {report.current}" if report.current else "")
    if report.timed_out:
        return f"timed out after {timeout_s:g}s{where}"
    sig = _signal_of(report.returncode)
    if sig == signal.SIGXCPU:
        return f"CPU time limit ({math.ceil(timeout_s) + 1}s) exceeded{where}"
    if _has_memory_hint(report):
        return f"memory limit ({memory_mb} MB) exceeded{where}"
    tail = report.stderr_tail.strip().splitlines()[-3:]
    detail = (": " + " | ".join(tail)) if tail else ""
    if sig is not None:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"the program was killed by {name}{where}{detail}"
    return f"the program exited with code {report.returncode}{where}{detail}"


def _has_memory_hint(report: RunReport) -> bool:
    return any(hint in report.stderr_tail for hint in _MEMORY_HINTS)


def _failure_text(name: str, kind: str, error: str, memory_mb: int) -> str:
    if kind == "memory":
        return f"memory limit ({memory_mb} MB) exceeded in {name}"
    return f"{name}: {error}"


def report_verdict(report: RunReport, timeout_s: float, memory_mb: int) -> Verdict:
    """The verdict for one run: score = fraction of tests passed, feedback = first failure."""
    tests = report.tests
    if report.program_error is not None:
        kind, error = report.program_error
        if kind == "memory":
            failure = f"memory limit ({memory_mb} MB) exceeded while loading the program"
        else:
            failure = f"the program failed: {error}"
        return Verdict(score=0.0, answer=None, correct=False, feedback=_shorten(failure))
    if not tests:
        crash = _crash_reason(report, timeout_s, memory_mb)
        return Verdict(score=0.0, answer=None, correct=False, feedback=_shorten(crash))
    passed = sum(1 for t in tests if report.results.get(t, (False, "", ""))[0])
    feedback: str | None = None
    for name in tests:
        result = report.results.get(name)
        if result is None:
            feedback = _crash_reason(report, timeout_s, memory_mb)
            break
        ok, kind, error = result
        if not ok:
            feedback = _failure_text(name, kind, error, memory_mb)
            break
    if feedback is None and not report.done:  # every test passed, then the run died
        feedback = _crash_reason(report, timeout_s, memory_mb)
    correct = passed == len(tests) and feedback is None
    return Verdict(
        score=passed / len(tests),
        answer=None,
        correct=correct,
        feedback=_shorten(feedback) if feedback is not None else None,
    )


class CodeVerifier:
    """Runs each output's program against unit tests; see the module docstring."""

    kind: str = "code"
    needs_reference: bool = False

    def __init__(
        self,
        tests: str,
        *,
        timeout_s: float = 5.0,
        memory_mb: int = 512,
        sandbox: Literal["auto", "unshare", "guard"] = "auto",
    ) -> None:
        self.tests = check_tests(tests)
        if not 0 < timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s must be in (0, {MAX_TIMEOUT_S:g}]")
        if not 32 <= memory_mb <= MAX_MEMORY_MB:
            raise ValueError(f"memory_mb must be in [32, {MAX_MEMORY_MB}]")
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.sandbox = sandbox

    async def _mode(self) -> SandboxMode:
        if self.sandbox == "guard":
            return "guard"
        available = await asyncio.to_thread(sandbox_mode)
        if self.sandbox == "unshare" and available != "unshare":
            raise VerifierError("the unshare sandbox is not available on this machine")
        return available

    async def run(self, program: str) -> Verdict:
        """The verdict for one program (already extracted)."""
        if not program.strip():
            return Verdict(
                score=0.0, answer=None, correct=False, feedback="no program found in the output"
            )
        report = await run_program(
            program,
            self.tests,
            timeout_s=self.timeout_s,
            memory_mb=self.memory_mb,
            mode=await self._mode(),
        )
        return report_verdict(report, self.timeout_s, self.memory_mb)

    async def verify(self, candidates: Sequence[Candidate]) -> list[Verdict]:
        programs = [extract_program(c.text) for c in candidates]
        unique = list(dict.fromkeys(programs))
        tasks = [asyncio.ensure_future(self.run(p)) for p in unique]
        try:
            verdicts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        by_program = dict(zip(unique, verdicts, strict=True))
        return [by_program[p] for p in programs]
