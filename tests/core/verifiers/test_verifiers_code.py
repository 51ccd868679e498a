"""The code verifier: programs run against unit tests in a sandboxed subprocess."""

from __future__ import annotations

import asyncio
import os
import socket
import textwrap
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from ttc_core.verifiers import (
    Candidate,
    CodeSpec,
    CodeVerifier,
    Verdict,
    VerifierError,
    build_verifier,
    parse_verifier_spec,
)
from ttc_core.verifiers import code as code_module
from ttc_core.verifiers.code import extract_program, sandbox_mode

TESTS = textwrap.dedent(
    """
    def test_small():
        assert add(1, 2) == 3

    def test_negative():
        assert add(-1, -2) == -3, "negative numbers"

    def test_zero():
        assert add(0, 0) == 0
    """
)

GOOD = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
MODES = ["auto", "guard"]


def fenced(source: str) -> str:
    return "```python\n" + textwrap.dedent(source).strip("\n") + "\n```"


def verify(
    *texts: str,
    tests: str = TESTS,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    sandbox: str = "auto",
) -> list[Verdict]:
    verifier = CodeVerifier(
        tests,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        sandbox=sandbox,  # type: ignore[arg-type]
    )
    return asyncio.run(verifier.verify([Candidate(prompt="write add", text=t) for t in texts]))


def one(text: str, **kwargs: object) -> Verdict:
    (verdict,) = verify(text, **kwargs)  # type: ignore[arg-type]
    return verdict


# -- extraction ------------------------------------------------------------------------------


def test_extract_program() -> None:
    assert extract_program(GOOD) == "def add(a, b):\n    return a + b\n"
    two = "```python\nfirst = 1\n```\ntext\n```py\nsecond = 2\n```"
    assert extract_program(two) == "second = 2\n"
    assert extract_program("```Python3\nx = 1\n```") == "x = 1\n"
    assert extract_program("```\nbare = 1\n```") == "bare = 1\n"
    assert extract_program("```python\nx = 1\n```\n```\nnot python\n```") == "x = 1\n"
    assert extract_program("x = 1\nprint(x)") == "x = 1\nprint(x)"
    assert extract_program("Sure:\n```python\ndef f():\n    return 1") == "def f():\n    return 1"


# -- results ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", MODES)
def test_passing_program(sandbox: str) -> None:
    verdict = one(GOOD, sandbox=sandbox)
    assert verdict == Verdict(score=1.0, answer=None, correct=True, feedback=None)


def test_failing_assert_feedback_and_partial_score() -> None:
    verdict = one(fenced("def add(a, b):\n    return abs(a) + abs(b)"))
    assert verdict.score == pytest.approx(2 / 3)
    assert verdict.correct is False
    assert verdict.feedback == (
        'test_negative: assert add(-1, -2) == -3, "negative numbers" (tests.py line 6)'
    )


def test_exception_feedback_names_the_program_line() -> None:
    verdict = one(fenced("def add(a, b):\n    return a + b + undefined_name"))
    assert verdict.score == 0.0
    assert verdict.feedback == (
        "test_small: NameError: name 'undefined_name' is not defined (solution.py line 2)"
    )


def test_top_level_asserts_are_one_test() -> None:
    tests = "assert add(1, 2) == 3\nassert add(2, 2) == 4\n"
    assert one(GOOD, tests=tests).score == 1.0
    bad = one(fenced("def add(a, b):\n    return 3"), tests=tests)
    assert bad.score == 0.0
    assert bad.feedback == "<tests>: assert add(2, 2) == 4 (tests.py line 2)"


def test_import_from_solution_and_async_tests() -> None:
    tests = textwrap.dedent(
        """
        from solution import add
        import solution

        def test_import():
            assert solution.add(2, 3) == 5

        async def test_async():
            assert add(1, 1) == 2
        """
    )
    assert one(GOOD, tests=tests).score == 1.0


def test_tests_module_failure_fails_every_test() -> None:
    tests = "setup = 1 / 0\n\ndef test_a():\n    pass\n\ndef test_b():\n    pass\n"
    verdict = one(GOOD, tests=tests)
    assert verdict.score == 0.0
    assert verdict.feedback == (
        "test_a: the tests' module code failed: ZeroDivisionError: division by zero "
        "(tests.py line 1)"
    )


def test_program_failures() -> None:
    syntax = one(fenced("def add(a, b) return a + b"))
    assert syntax.score == 0.0
    assert syntax.feedback == "the program failed: SyntaxError: expected ':' (solution.py line 1)"
    raises = one(fenced("raise RuntimeError('boom')"))
    assert raises.feedback == "the program failed: RuntimeError: boom (solution.py line 1)"
    exits = one(fenced("import sys\nsys.exit(2)"))
    assert exits.feedback == "the program failed: the program called exit(2)"
    hard_exit = one(fenced("import os\ndef add(a, b):\n    os._exit(7)"))
    assert hard_exit.feedback == "the program exited with code 7 in test_small"


def test_no_program() -> None:
    verdict = one("```python\n\n```")
    assert verdict == Verdict(
        score=0.0, answer=None, correct=False, feedback="no program found in the output"
    )


def test_feedback_is_truncated() -> None:
    verdict = one(fenced("def add(a, b):\n    raise ValueError('x' * 5000)"))
    assert verdict.feedback is not None
    assert len(verdict.feedback) == 500
    assert verdict.feedback.startswith("test_small: ValueError: xxx")
    assert verdict.feedback.endswith("…")


def test_output_does_not_confuse_the_report() -> None:
    program = """
    import sys
    print('{"event": "test", "name": "test_small", "ok": true}')
    sys.stdout.write("x" * 3_000_000)
    sys.stderr.write("y" * 3_000_000)
    def add(a, b):
        print("adding", a, b)
        return a + b
    """
    assert one(fenced(program)).score == 1.0


def test_stdin_is_empty() -> None:
    verdict = one(fenced("def add(a, b):\n    return int(input())"))
    assert verdict.feedback is not None
    assert "EOFError" in verdict.feedback


# -- limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", MODES)
def test_infinite_loop_times_out(sandbox: str) -> None:
    started = time.monotonic()
    verdict = one(
        fenced("def add(a, b):\n    while True:\n        pass"), timeout_s=1, sandbox=sandbox
    )
    assert time.monotonic() - started < 4
    assert verdict.score == 0.0
    assert verdict.correct is False
    assert verdict.feedback == "timed out after 1s in test_small"


def test_timeout_while_loading_and_partial_score() -> None:
    loading = one(fenced("import time\ntime.sleep(30)"), timeout_s=0.5)
    assert loading.feedback == "timed out after 0.5s while loading the program"
    tests = (
        "def test_a():\n    assert add(1, 1) == 2\n\ndef test_b():\n    while True:\n        pass\n"
    )
    partial = one(GOOD, tests=tests, timeout_s=1)
    assert partial.score == 0.5
    assert partial.feedback == "timed out after 1s in test_b"


@pytest.mark.parametrize("sandbox", MODES)
def test_memory_bomb_hits_the_limit(sandbox: str) -> None:
    program = """
    def add(a, b):
        hog = []
        while True:
            hog.append(bytearray(10 * 1024 * 1024))
    """
    verdict = one(fenced(program), memory_mb=256, sandbox=sandbox)
    assert verdict.score == 0.0
    assert verdict.feedback == "memory limit (256 MB) exceeded in test_small"


def test_one_huge_allocation() -> None:
    verdict = one(fenced("data = bytearray(8 * 1024 ** 3)"), memory_mb=256)
    assert verdict.feedback == "memory limit (256 MB) exceeded while loading the program"


def test_file_size_limit() -> None:
    program = """
    def add(a, b):
        with open("big.bin", "wb") as f:
            f.write(b"x" * (64 * 1024 * 1024))
        return a + b
    """
    verdict = one(fenced(program), memory_mb=1024)
    assert verdict.feedback is not None
    assert "File too large" in verdict.feedback


# -- isolation -------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP server on 127.0.0.1 that a sandboxed program must not reach."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("sandbox", MODES)
def test_network_is_blocked(sandbox: str, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    tests = textwrap.dedent(
        f"""
        import socket

        def test_create_connection():
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
            except OSError as exc:
                raise AssertionError("blocked: " + str(exc))

        def test_raw_socket():
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(2)
                s.connect(("127.0.0.1", {port}))
            except OSError as exc:
                raise AssertionError("blocked: " + str(exc))

        def test_unix_socketpair_still_works():
            a, b = socket.socketpair()
            a.sendall(b"ok")
            assert b.recv(2) == b"ok"
        """
    )
    verdict = one(GOOD, tests=tests, sandbox=sandbox)
    assert verdict.score == pytest.approx(1 / 3)
    assert verdict.feedback is not None
    assert verdict.feedback.startswith("test_create_connection: AssertionError: blocked: ")
    if sandbox == "guard":
        assert "network access is disabled in this sandbox" in verdict.feedback
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected


def test_runs_in_a_fresh_temporary_directory() -> None:
    tests = textwrap.dedent(
        """
        import os

        def test_where():
            here = os.getcwd()
            assert os.path.basename(here).startswith("ttc-code-")
            assert sorted(os.listdir(".")) == ["_runner.py", "solution.py", "tests.py"]
            with open("scratch.txt", "w") as f:
                f.write("hello")
            assert os.path.exists(os.path.join(here, "scratch.txt"))

        def test_environment():
            assert set(os.environ) <= {"PATH", "LC_CTYPE"}, sorted(os.environ)

        def test_report_cwd():
            assert False, os.getcwd()
        """
    )
    verdict = one(GOOD, tests=tests)
    assert verdict.score == pytest.approx(2 / 3)
    assert verdict.feedback is not None
    workdir = verdict.feedback.split(": ", 2)[2].rsplit(" (", 1)[0]
    assert os.path.basename(workdir).startswith("ttc-code-")
    assert not os.path.exists(workdir)  # removed after the run


def test_sandbox_mode_is_cached_and_known() -> None:
    assert sandbox_mode() in ("unshare", "guard")
    assert sandbox_mode() is sandbox_mode()


@pytest.mark.skipif(sandbox_mode() != "unshare", reason="needs user namespaces")
def test_left_over_processes_die_with_the_run() -> None:
    marker = "987.654321"
    program = f"""
    import subprocess
    subprocess.Popen(["sleep", "{marker}"], start_new_session=True)
    def add(a, b):
        return a + b
    """
    assert one(fenced(program)).score == 1.0
    time.sleep(0.2)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    assert marker.encode() not in f.read()
            except OSError:
                pass


def test_forced_unshare_without_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code_module, "sandbox_mode", lambda: "guard")
    with pytest.raises(VerifierError, match="unshare sandbox is not available"):
        one(GOOD, sandbox="unshare")


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_runs() -> None:
    programs = [fenced(f"def add(a, b):\n    return a + b + {i}") for i in range(6)]
    verdicts = verify(GOOD, *programs, GOOD)
    assert [v.score for v in verdicts] == [1.0, 1.0] + [0.0] * 5 + [1.0]
    assert verdicts[2].feedback == "test_small: assert add(1, 2) == 3 (tests.py line 3)"


def test_runs_in_flight_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code_module, "MAX_PARALLEL_RUNS", 2)
    programs = [
        fenced(f"import time\ntime.sleep(0.4)\ndef add(a, b):\n    return a + b + 0 * {i}")
        for i in range(4)
    ]
    started = time.monotonic()
    verdicts = verify(*programs)
    elapsed = time.monotonic() - started
    assert all(v.score == 1.0 for v in verdicts)
    assert elapsed >= 0.8  # 4 runs of 0.4 s, 2 at a time


def test_identical_programs_run_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = code_module.run_program

    async def counting(program: str, tests: str, **kwargs: object) -> code_module.RunReport:
        calls.append(program)
        return await real(program, tests, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(code_module, "run_program", counting)
    verdicts = verify(GOOD, GOOD, "```py\ndef add(a, b):\n    return a + b\n```")
    assert [v.score for v in verdicts] == [1.0, 1.0, 1.0]
    assert len(calls) == 1


# -- spec ------------------------------------------------------------------------------------


def test_spec_defaults_and_registry() -> None:
    spec = parse_verifier_spec({"kind": "code", "tests": TESTS})
    assert isinstance(spec, CodeSpec)
    assert (spec.timeout_s, spec.memory_mb) == (5.0, 512)
    verifier = build_verifier(spec, reference=None, endpoints={}, http_client=None)
    assert isinstance(verifier, CodeVerifier)
    assert verifier.kind == "code"
    assert verifier.needs_reference is False
    assert verifier.tests == TESTS


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "code"}, "tests\n  Field required"),
        ({"kind": "code", "tests": ""}, "tests\n  String should have at least 1 character"),
        ({"kind": "code", "tests": "   "}, "tests are empty"),
        ({"kind": "code", "tests": "def test_x(:\n"}, "tests do not compile"),
        ({"kind": "code", "tests": "#" * (100 * 1024 + 1)}, "tests"),
        ({"kind": "code", "tests": "# " + "\u00e9" * 60_000}, "bytes; at most 102400"),
        ({"kind": "code", "tests": TESTS, "timeout_s": 61}, "timeout_s"),
        ({"kind": "code", "tests": TESTS, "timeout_s": 0}, "timeout_s"),
        ({"kind": "code", "tests": TESTS, "memory_mb": 4097}, "memory_mb"),
        ({"kind": "code", "tests": TESTS, "memory_mb": 8}, "memory_mb"),
        ({"kind": "code", "tests": TESTS, "pattern": "x"}, "Extra inputs"),
    ],
)
def test_invalid_specs(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_verifier_spec(data)


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="tests do not compile"):
        CodeVerifier("def (")
    with pytest.raises(ValueError, match="timeout_s"):
        CodeVerifier(TESTS, timeout_s=100)
    with pytest.raises(ValueError, match="memory_mb"):
        CodeVerifier(TESTS, memory_mb=10_000)


def test_only_test_functions_count() -> None:
    tests = textwrap.dedent(
        """
        def testing_helper(x):
            return add(x, x)

        def test_double():
            assert testing_helper(2) == 4

        def test_double():  # redefined: counted once, the last definition runs
            assert testing_helper(3) == 6
        """
    )
    verdict = one(GOOD, tests=tests)
    assert verdict == Verdict(score=1.0, answer=None, correct=True, feedback=None)
    bad = one(fenced("def add(a, b):\n    return 0"), tests=tests)
    assert bad.score == 0.0
    assert bad.feedback == "test_double: assert testing_helper(3) == 6 (tests.py line 9)"
