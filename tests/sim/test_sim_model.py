from __future__ import annotations

from collections import Counter

import pytest

from ttc_sim.answers import extract_answer
from ttc_sim.config import SimConfig
from ttc_sim.game24 import TARGET, check_expression, split_moves, start_items
from ttc_sim.model import distractor_answers, generate
from ttc_sim.steps import STEP_DELIMITER, final_step, is_correct, strip_lead_in
from ttc_sim.tasks import choice_problems, game24_problems, gsm8k_problems, synthetic_problems

CFG = SimConfig()


def test_sample_format() -> None:
    p = gsm8k_problems()[2]
    s = generate(p, 0, CFG)
    parts = s.text.split(STEP_DELIMITER)
    assert len(parts) == len(p.steps) + 1
    assert parts[-1] == final_step(s.answer or "")
    assert parts[-1].startswith("The final answer is $\\boxed{")
    assert parts[-1].endswith(f"}}$.\nANSWER: {s.answer}")
    assert extract_answer(s.text) == s.answer
    assert s.correct == is_correct(p, s.answer)
    assert len(s.steps_correct) == len(p.steps)


def test_same_seed_same_text_and_seeds_differ() -> None:
    p = synthetic_problems(1, seed=0)[0]
    assert generate(p, 7, CFG) == generate(p, 7, CFG)
    texts = {generate(p, seed, SimConfig(step_accuracy=0.5)).text for seed in range(50)}
    assert len(texts) > 5


def test_wrong_steps_are_visible_and_make_the_answer_wrong() -> None:
    p = gsm8k_problems()[5]
    cfg = SimConfig(step_accuracy=0.6)
    seen_wrong = 0
    for seed in range(200):
        s = generate(p, seed, cfg)
        assert s.correct == all(s.steps_correct)
        assert s.correct == (s.answer == p.answer)
        for step, ref, ok in zip(s.steps, p.steps, s.steps_correct, strict=True):
            assert (strip_lead_in(step) == ref) == ok
            if not ok:
                seen_wrong += 1
    assert seen_wrong > 50


@pytest.mark.parametrize("steps", [2, 4, 6])
def test_step_accuracy_compounds(steps: int) -> None:
    problems = [p for p in synthetic_problems(400, seed=11) if len(p.steps) == steps][:20]
    cfg = SimConfig(step_accuracy=0.9)
    draws = [generate(p, seed, cfg).correct for p in problems for seed in range(100)]
    rate = sum(draws) / len(draws)
    assert abs(rate - 0.9**steps) < 0.04


def test_sample_accuracy_is_exact_whatever_the_steps() -> None:
    cfg = SimConfig(sample_accuracy=0.3, distractors=4)
    for p in (gsm8k_problems()[1], gsm8k_problems()[3], synthetic_problems(3, seed=2)[2]):
        wrong: Counter[str] = Counter()
        correct = 0
        for seed in range(2000):
            s = generate(p, seed, cfg)
            correct += s.correct
            if not s.correct:
                assert s.answer != p.answer
                wrong[s.answer or ""] += 1
                assert not all(s.steps_correct)
        assert abs(correct / 2000 - 0.3) < 0.035
        # wrong samples spread uniformly over the 4 distractors
        assert set(wrong) == set(distractor_answers(p, 4))
        expected = (2000 - correct) / 4
        assert all(abs(n - expected) < 0.2 * expected for n in wrong.values())


def test_distractors() -> None:
    for p in gsm8k_problems(50):
        d = distractor_answers(p, 6)
        assert len(set(d)) == 6 and p.answer not in d
        assert distractor_answers(p, 3) == d[:3]
        assert not any(is_correct(p, x) for x in d)
    c = choice_problems(1, seed=0)[0]
    letters = distractor_answers(c, 10)
    assert len(letters) == 4 and c.answer not in letters


def test_choice_answers_are_letters() -> None:
    p = choice_problems(1, seed=4)[0]
    answers = {generate(p, s, SimConfig(sample_accuracy=0.5)).answer for s in range(200)}
    assert answers <= set("ABCDE") and len(answers) == 5


def _solve_rate(board: tuple, skill: float) -> float:
    """Exact probability that a sample from ``board`` solves the puzzle with ``skill``."""
    if len(board) == 1:
        return float(board[0][0] == TARGET)
    good, bad = split_moves(board)
    every = good + bad
    p_good = skill if good else 0.0
    out = (1 - p_good) * sum(_solve_rate(m.items, skill) for m in every) / len(every)
    if good:
        out += p_good * sum(_solve_rate(m.items, skill) for m in good) / len(good)
    return out


def test_game24_samples() -> None:
    p = game24_problems(901, 902)[0]
    for skill in (0.0, 0.5, 0.8):
        cfg = SimConfig(game24_skill=skill, step_accuracy=0.1)
        outcomes = []
        for seed in range(400):
            s = generate(p, seed, cfg)
            assert len(s.steps) == 3
            assert s.correct == check_expression(s.answer or "", p.numbers)
            assert s.correct == all(s.steps_correct)
            assert s.answer and not s.answer.isdigit()  # an expression, right or wrong
            outcomes.append(s.correct)
        expected = _solve_rate(start_items(p.numbers), skill)
        assert abs(sum(outcomes) / 400 - expected) < 0.08, (skill, expected)
    exact = SimConfig(sample_accuracy=0.25)
    rate = sum(generate(p, seed, exact).correct for seed in range(1000)) / 1000
    assert abs(rate - 0.25) < 0.05


def test_game24_full_skill_greedy_always_solves() -> None:
    cfg = SimConfig(game24_skill=1.0)
    for p in game24_problems(901, 1001):
        s = generate(p, 0, cfg)
        assert s.correct and check_expression(s.answer or "", p.numbers)


def _continue_stepwise(problem_question: str, problem, seed: int) -> str:
    prefix = ""
    for _ in range(20):
        s = generate(problem, seed, CFG, "\n\n" + prefix if prefix else "")
        step = s.text.split(STEP_DELIMITER)[0]
        prefix += step
        if "ANSWER:" in step:
            return prefix
        prefix += STEP_DELIMITER
    raise AssertionError("did not finish")


@pytest.mark.parametrize("family", ["gsm8k", "synthetic", "game24"])
def test_continuation_rebuilds_the_sample(family: str) -> None:
    problem = {
        "gsm8k": gsm8k_problems()[9],
        "synthetic": synthetic_problems(1, seed=5)[0],
        "game24": game24_problems(1000, 1001)[0],
    }[family]
    for seed in range(10):
        whole = generate(problem, seed, CFG).text
        assert _continue_stepwise(problem.question, problem, seed) == whole


def test_continuation_after_a_wrong_step_is_wrong() -> None:
    p = gsm8k_problems()[2]
    cfg = SimConfig(step_accuracy=1.0, step_variety=0)
    bad = p.steps[0].replace("130,000", "130,001")
    s = generate(p, 1, cfg, "\n\n" + bad + "\n\n")
    assert not s.correct and s.answer != p.answer
    assert s.steps == p.steps[1:]
    good = generate(p, 1, cfg, "\n\n" + p.steps[0] + "\n\n")
    assert good.correct and good.text.startswith(p.steps[1])
    # without the trailing delimiter, the continuation starts with it
    glued = generate(p, 1, cfg, "\n\n" + p.steps[0])
    assert glued.text == "\n\n" + good.text
    # a finished solution leaves nothing to generate
    done = generate(p, 1, cfg, "\n\n" + good.text)
    assert done.text == "" and done.correct


def test_math_style_samples_are_judged_like_plain_ones() -> None:
    from ttc_sim.steps import GOOD, judge_chunks, split_chunks

    m = synthetic_problems(1, seed=17, steps=8, style="math")[0]
    cfg = SimConfig(step_accuracy=0.8)
    outcomes = set()
    for seed in range(60):
        s = generate(m, seed, cfg)
        verdicts = judge_chunks(m, split_chunks(s.text))
        assert len(verdicts) == 9  # eight worked steps and the final answer
        assert (verdicts[-1] == GOOD) == s.correct
        outcomes.add(s.correct)
    assert outcomes == {True, False}
