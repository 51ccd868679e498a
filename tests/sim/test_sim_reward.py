from __future__ import annotations

import statistics

from ttc_sim.answers import answers_match, extract_answer
from ttc_sim.config import SimConfig
from ttc_sim.model import generate
from ttc_sim.reward import judge, reward_score, score_responses, score_text
from ttc_sim.tasks import choice_problems, game24_problems, gsm8k_problems


def test_extract_and_compare_answers() -> None:
    assert extract_answer("blah\nThe final answer is $\\boxed{18}$.\nANSWER: 18") == "18"
    assert extract_answer("so \\boxed{\\frac{1}{2}} done") == "\\frac{1}{2}"
    assert extract_answer("no answer here") is None
    assert answers_match("$70,000", "70000")
    assert answers_match("\\frac{1}{2}", "0.5")
    assert answers_match("18.0", "18")
    assert not answers_match("19", "18")
    assert answers_match("(B)", "B") and not answers_match("C", "B")


def test_reward_correlates_with_correctness() -> None:
    cfg = SimConfig(step_accuracy=0.7)
    right: list[float] = []
    wrong: list[float] = []
    for p in gsm8k_problems(20):
        for seed in range(20):
            s = generate(p, seed, cfg)
            (right if s.correct else wrong).append(reward_score(p, s.text, cfg))
    assert len(right) > 50 and len(wrong) > 50
    assert statistics.mean(right) > statistics.mean(wrong) + 0.3
    assert all(0 < x < 1 for x in right + wrong)


def test_reward_is_deterministic_and_noise_free_when_asked() -> None:
    p = gsm8k_problems()[0]
    text = generate(p, 3, SimConfig()).text
    assert reward_score(p, text, SimConfig()) == reward_score(p, text, SimConfig())
    exact = SimConfig(reward_noise=0)
    assert reward_score(p, "ANSWER: 18", exact) > 0.85
    assert reward_score(p, "ANSWER: 17", exact) < 0.15


def test_process_reward_on_partial_solutions() -> None:
    p = gsm8k_problems()[2]
    assert judge(p, p.steps[0]) == 2.0
    assert judge(p, p.steps[0].replace("130,000", "130,500")) == -2.0
    assert judge(p, "I am not sure.") == 0.0
    g = game24_problems(901, 902)[0]
    assert judge(g, g.steps[0]) == 2.0
    assert judge(g, "ANSWER: " + g.answer) == 2.0


def test_score_text_and_responses() -> None:
    c = choice_problems(1, seed=9)[0]
    cfg = SimConfig(reward_noise=0)
    assert score_text(c.question + "\n\nANSWER: " + c.answer, cfg) > 0.85
    scores = score_responses(c.question, ["ANSWER: " + c.answer, "ANSWER: Z"], cfg)
    assert scores[0] > 0.85 > 0.15 > scores[1]
