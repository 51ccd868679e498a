from __future__ import annotations

import statistics
import time
from fractions import Fraction

import pytest

from ttc_sim.game24 import check_expression, solvable
from ttc_sim.tasks import (
    ProblemIndex,
    choice_problems,
    find_problem,
    game24_problems,
    gsm8k_problems,
    synthetic_problems,
)
from ttc_sim.tokens import count_tokens


def test_gsm8k_sample() -> None:
    problems = gsm8k_problems()
    assert len(problems) == 200
    p = problems[0]
    assert p.id == "gsm8k-0" and p.family == "gsm8k" and p.answer == "18"
    assert p.steps[0] == "Janet sells 16 - 3 - 4 = 9 duck eggs a day."
    assert all("<<" not in s and s for q in problems for s in q.steps)
    assert len(gsm8k_problems(5)) == 5


def test_synthetic_problems() -> None:
    problems = synthetic_problems(300, seed=3)
    assert len({p.question for p in problems}) == 300
    assert len({p.id for p in problems}) == 300
    for i, p in enumerate(problems):
        assert p.question.startswith(f"Problem S-3-{i}:")
        assert 2 <= len(p.steps) <= 6
        # the last step's result is the answer
        assert p.steps[-1].split("= ")[-1].split()[0] == p.answer
    assert synthetic_problems(5, seed=3) == problems[:5]
    assert synthetic_problems(5, seed=4)[0].question != problems[0].question


def test_math_style_problems_are_the_same_problems_with_worked_steps() -> None:
    plain = synthetic_problems(40, seed=17, steps=8)
    worked = synthetic_problems(40, seed=17, steps=8, style="math")
    lengths = []
    for i, (p, m) in enumerate(zip(plain, worked, strict=True)):
        assert m.id == f"M8-17-{i}" and m.question.startswith(f"Problem M8-17-{i}:")
        assert m.question.removeprefix(f"Problem {m.id}:") == p.question.removeprefix(
            f"Problem {p.id}:"
        )
        assert m.answer == p.answer and len(m.steps) == len(p.steps) == 8
        for k, (step, line) in enumerate(zip(m.steps, p.steps, strict=True), 1):
            assert step.startswith(f"## Step {k}: ") and "\n\n" not in step
            # the same arithmetic: the plain step's last equation ends the worked one too
            assert step.rsplit("= ", 1)[-1].split()[0] == line.rsplit("= ", 1)[-1].split()[0]
            lengths.append(count_tokens(step))
        # the server finds the problem from its id in any prompt
        assert find_problem("system prompt\n\n" + m.question + "\n\n## Step 1:") == m
    assert min(lengths) >= 30 and max(lengths) <= 60  # MATH/PRM800K-sized steps
    assert statistics.fmean(lengths) >= 35
    with pytest.raises(ValueError, match="fixed number of steps"):
        synthetic_problems(1, seed=17, style="math")


def test_choice_problems() -> None:
    for p in choice_problems(50, seed=1):
        assert p.answer in "ABCDE"
        assert f"{p.answer}) " in p.question
        assert p.question.startswith("Problem C-1-")


def test_game24_problems() -> None:
    problems = game24_problems(901, 1001)
    assert len(problems) == 100
    for p in problems:
        assert len(p.numbers) == 4 and len(p.steps) == 3
        assert check_expression(p.answer, p.numbers)
        assert solvable([Fraction(n) for n in p.numbers])


def test_find_problem_in_prompts() -> None:
    p = gsm8k_problems()[7]
    other = gsm8k_problems()[3]
    assert find_problem(p.question) is p
    prompt = f"Question: {other.question}\nAnswer: 42\n\nQuestion: {p.question}\nAnswer:"
    assert find_problem(prompt) is p  # few-shot: the last question wins
    squashed = " ".join(p.question.split()).replace("  ", " ")
    assert find_problem("Q: " + squashed).id == p.id
    s = synthetic_problems(10, seed=99)[9]
    assert find_problem("Solve this.\n" + s.question + "\n\nStep one") == s
    c = choice_problems(3, seed=5)[2]
    assert find_problem(c.question) == c
    g = game24_problems(950, 951)[0]
    assert find_problem(g.question) == g
    tot = find_problem("Input: 1 1 4 6\nPossible next steps:\n")
    assert tot.family == "game24" and tot.numbers == (1, 1, 4, 6)


def test_generic_fallback_is_stable() -> None:
    a = find_problem("What is the meaning of life?")
    assert a.family == "generic"
    assert find_problem("What is the meaning of life?") == a
    cont = find_problem("What is the meaning of life?\n\n" + a.steps[0] + "\n\n")
    assert cont == a
    assert find_problem("Something else entirely") != a


def test_index_is_fast_and_extensible() -> None:
    index = ProblemIndex()
    prompts = [f"System prompt.\n\nQ: {p.question}\nA:" for p in gsm8k_problems()]
    start = time.perf_counter()
    for text in prompts:
        index.find(text)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(5):
        for text in prompts:
            index.find(text)
    warm = (time.perf_counter() - start) / 5
    assert cold < 1.0
    assert warm < 0.05
    custom = synthetic_problems(1, seed=1)[0]
    index.add(custom)
    assert index.find(custom.question) == custom
