"""Math equivalence through math-verify, including from worker threads."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading

import pytest

from ttc_core.verifiers import Candidate, MathVerifier, Verdict, math_equivalent, warm_up

PROMPT = "Compute the probability."


def run(verifier: MathVerifier, *texts: str) -> list[Verdict]:
    return asyncio.run(verifier.verify([Candidate(prompt=PROMPT, text=t) for t in texts]))


@pytest.mark.parametrize(
    ("reference", "answer"),
    [
        ("\\frac{3}{4}", "0.75"),
        ("0.75", "\\frac{3}{4}"),
        ("\\frac{1}{2}", "1/2"),
        ("0.5", "\\dfrac{1}{2}"),
        ("1000", "1,000"),
        ("72", "\\boxed{72}"),
        ("$72$", "72.0"),
        ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2"),
        ("3\\sqrt{2}", "\\sqrt{18}"),
        ("(x+1)^2", "x^2+2x+1"),
        ("5", "x = 5"),
        ("\\{1, 2\\}", "\\{2, 1\\}"),
        ("B", "(B)"),
        ("\\frac{n!}{2^n}", "n!/2^{n}"),
        ("\\binom{10}{3}", "120"),
    ],
)
def test_equivalent(reference: str, answer: str) -> None:
    assert math_equivalent(reference, answer)


@pytest.mark.parametrize(
    ("reference", "answer"),
    [
        ("\\frac{3}{4}", "0.7"),
        ("2", "3"),
        ("(1, 2)", "(2, 1)"),
        ("1", "hello"),
        ("1", ""),
        ("x", "y"),
    ],
)
def test_not_equivalent(reference: str, answer: str) -> None:
    assert not math_equivalent(reference, answer)


def test_realistic_outputs() -> None:
    verifier = MathVerifier("\\frac{3}{4}")
    boxed, answer_line, plain, wrong, nothing = run(
        verifier,
        "P = 3/4 since three of four outcomes win.\nThe final answer is $\\boxed{0.75}$.",
        "Simplifying, we get 6/8.\nANSWER: 3/4",
        "so the probability is 0.75",
        "The final answer is $\\boxed{\\frac{2}{3}}$.",
        "I could not finish the computation.",
    )
    assert (boxed.score, boxed.answer, boxed.correct) == (1.0, "0.75", True)
    assert (answer_line.score, answer_line.answer, answer_line.correct) == (1.0, "3/4", True)
    assert plain.correct is True
    assert wrong.score == 0.0
    assert wrong.correct is False
    assert wrong.answer == "\\frac{2}{3}"
    assert wrong.feedback == "expected \\frac{3}{4}, got \\frac{2}{3}"
    assert nothing.score == 0.0
    assert nothing.correct is False
    assert nothing.answer is None
    assert nothing.feedback is not None


def test_gsm8k_style() -> None:
    (verdict,) = run(MathVerifier("72"), "The final answer is $\\boxed{72}$.\nANSWER: 72")
    assert verdict == Verdict(score=1.0, answer="72", correct=True, feedback=None)
    (thousands,) = run(MathVerifier("1000"), "That makes $1,000 in total.\nANSWER: 1,000")
    assert thousands.correct is True


def test_boxed_reference_and_pattern() -> None:
    verifier = MathVerifier("$\\boxed{\\frac{1}{2}}$", re.compile(r"RESULT=(\S+)"))
    good, unmatched = run(verifier, "RESULT=0.5", "\\boxed{0.5}")
    assert good.correct is True
    assert unmatched.correct is False
    assert unmatched.answer is None


def test_without_reference() -> None:
    verdicts = run(MathVerifier(None), "\\boxed{\\frac{3}{4}}", "nothing here")
    assert verdicts[0] == Verdict(score=None, answer="\\frac{3}{4}", correct=None, feedback=None)
    assert verdicts[1].answer is None
    assert verdicts[1].score is None


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "answer",
    [
        "9^{9^{9^{9}}}",
        "\\binom{1000000000}{500000000}",
        "\\gcd(10^{10^{10}}, 2)",
        "2^{1000000}",
        "\\binom{10^9}{5 \\cdot 10^8}",
        "(x+1)^{100000}",
        "100000000!",
        "\\frac{" * 200 + "1" + "}{2}" * 200,
    ],
)
def test_pathological_answers_do_not_hang(answer: str) -> None:
    (verdict,) = run(MathVerifier("1"), f"\\boxed{{{answer}}}")
    assert verdict.correct is False
    assert verdict.score == 0.0


def test_works_off_the_main_thread() -> None:
    """math-verify's signal-based timeouts would raise here; they must be disabled."""
    out: list[list[Verdict]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            verifier = MathVerifier("\\frac{5}{8}")
            out.append(run(verifier, "\\boxed{0.625}", "\\boxed{5/9}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=60)
    assert not errors, errors
    assert [v.correct for v in out[0]] == [True, False]


def test_many_candidates_share_work() -> None:
    texts = [f"\\boxed{{{a}}}" for a in ["0.25", "1/4", "\\frac{1}{4}", "0.3"] * 25]
    verdicts = run(MathVerifier("\\frac14"), *texts)
    assert [v.correct for v in verdicts] == [True, True, True, False] * 25


def test_warm_up() -> None:
    warm_up()
    assert math_equivalent("\\frac{1}{2}", "0.5")


def test_import_is_light() -> None:
    """Importing the package loads neither SymPy (lazy) nor a web framework or queue."""
    code = (
        "import sys, ttc_core.verifiers\n"
        "heavy = {'sympy', 'math_verify', 'fastapi', 'celery', 'starlette'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
