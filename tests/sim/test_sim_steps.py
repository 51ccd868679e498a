"""Step-level continuation: one step per request, consistent with the prefix."""

from __future__ import annotations

import random
import re
from typing import Any

import httpx
import pytest

from ttc_sim.answers import extract_answer
from ttc_sim.config import SimConfig
from ttc_sim.game24 import move_lines
from ttc_sim.model import distractor_answers, generate
from ttc_sim.steps import (
    BAD,
    GOOD,
    STEP_DELIMITER,
    corrupt_step,
    final_step,
    is_correct,
    is_final,
    judge_chunks,
    strip_lead_in,
)
from ttc_sim.tasks import Problem, find_problem, game24_problems, synthetic_problems

P6 = synthetic_problems(40, seed=21, steps=6)


def next_step(problem: Problem, steps: list[str], seed: int, cfg: SimConfig) -> str:
    """What a client stopping at the step delimiter gets for this prefix (completions form)."""
    prefix = STEP_DELIMITER + STEP_DELIMITER.join(steps) + STEP_DELIMITER if steps else ""
    return generate(problem, seed, cfg, prefix).text.split(STEP_DELIMITER)[0]


def grow(problem: Problem, seeds: list[int], cfg: SimConfig) -> list[str]:
    """A path grown one step per request, request ``i`` with ``seeds[i]`` (up to its end)."""
    steps: list[str] = []
    for seed in seeds:
        steps.append(next_step(problem, steps, seed, cfg))
        if is_final(steps[-1]):
            break
    return steps


def walk(problem: Problem, seeds: list[int], cfg: SimConfig) -> list[str]:
    """:func:`grow`, which must reach a final answer."""
    steps = grow(problem, seeds, cfg)
    assert is_final(steps[-1]), "the path did not finish"
    return steps


def test_synthetic_problems_with_a_given_number_of_steps() -> None:
    for i, p in enumerate(P6):
        assert len(p.steps) == 6 and p.id == f"S6-21-{i}"
        assert p.question.startswith(f"Problem S6-21-{i}:")
        assert p.steps[-1].split("= ")[-1].split()[0] == p.answer
        assert find_problem("Solve:\n" + p.question + "\n\nstep") == p
    assert len({p.question for p in P6}) == 40
    assert synthetic_problems(3, seed=21, steps=6) == P6[:3]
    assert all(len(p.steps) == 2 for p in synthetic_problems(5, seed=1, steps=2))
    assert synthetic_problems(2, seed=21)[0].id == "S-21-0"  # the 2-6 step family is unchanged
    with pytest.raises(ValueError):
        synthetic_problems(1, steps=0)


def test_next_step_is_right_with_step_accuracy_whatever_the_prefix() -> None:
    cfg = SimConfig(step_accuracy=0.8)
    right_path = SimConfig(step_accuracy=1.0)  # right prefixes, with the sim's own lead-ins
    for depth in (0, 3, 5):
        good = total = 0
        for p in P6[:20]:
            prefix = grow(p, list(range(100, 100 + depth)), right_path)
            for seed in range(50):
                step = next_step(p, prefix, seed, cfg)
                good += judge_chunks(p, [*prefix, step])[-1] == GOOD
                total += 1
        assert abs(good / total - 0.8) < 0.04, (depth, good / total)


def test_a_wrong_step_anywhere_keeps_the_path_wrong() -> None:
    cfg = SimConfig(step_accuracy=0.75, distractors=3)
    outcomes = {True: 0, False: 0}
    for p in P6[:25]:
        for k in range(8):
            # every request with a different seed, as a search that mixes branches does
            steps = walk(p, [1000 * k + 7 * d for d in range(10)], cfg)
            assert len(steps) == 7
            final = steps[-1]
            answer = extract_answer(final)
            assert answer is not None and final == final_step(answer)
            assert STEP_DELIMITER not in final  # one step, so one node
            wrong_before = BAD in judge_chunks(p, steps[:-1])
            assert is_correct(p, answer) == (not wrong_before)
            if wrong_before:
                assert answer in distractor_answers(p, 3)
            outcomes[not wrong_before] += 1
    assert outcomes[True] > 20 and outcomes[False] > 20


def test_continuation_from_a_right_prefix_beats_a_wrong_one() -> None:
    cfg = SimConfig(step_accuracy=0.8)
    right, wrong = [], []
    for p in P6[:20]:
        good_prefix = p.steps[:3]
        bad_prefix = [p.steps[0], corrupt_step(p.steps[1], random.Random(1)), p.steps[2]]
        assert judge_chunks(p, bad_prefix) == [GOOD, BAD, BAD]
        for seed in range(25):
            right.append(is_correct(p, extract_answer(walk_from(p, good_prefix, seed, cfg))))
            wrong.append(is_correct(p, extract_answer(walk_from(p, bad_prefix, seed, cfg))))
    assert abs(sum(right) / len(right) - 0.8**3) < 0.06
    assert sum(wrong) == 0


def walk_from(p: Problem, prefix: list[str], seed: int, cfg: SimConfig) -> str:
    steps = list(prefix)
    while not steps or not is_final(steps[-1]):
        steps.append(next_step(p, steps, seed + 31 * len(steps), cfg))
    return steps[-1]


def test_seeds_diversify_continuations_and_a_seed_repeats() -> None:
    p = P6[0]
    prefix = p.steps[:2]
    cfg = SimConfig(step_accuracy=0.8)
    steps = [next_step(p, prefix, seed, cfg) for seed in range(24)]
    assert steps == [next_step(p, prefix, seed, cfg) for seed in range(24)]
    right = [s for s in steps if judge_chunks(p, [*prefix, s])[-1] == GOOD]
    assert len(set(steps)) >= 10 and len(set(right)) >= 4
    assert {strip_lead_in(s) for s in right} == {p.steps[2]}
    plain = SimConfig(step_accuracy=1.0, step_variety=0)
    assert {next_step(p, prefix, seed, plain) for seed in range(10)} == {p.steps[2]}
    # one seed continues different prefixes independently
    prefixes = [grow(p, [s, s + 1], SimConfig(step_accuracy=1.0)) for s in range(60)]
    outcomes = {
        tuple(pre): judge_chunks(p, [*pre, next_step(p, pre, 5, SimConfig(step_accuracy=0.5))])[-1]
        for pre in prefixes
    }
    assert len(outcomes) > 10 and {GOOD, BAD} <= set(outcomes.values())


def _chat_step(client: httpx.Client, model: str, question: str, steps: list[str], **kw: Any):
    messages: list[dict[str, str]] = [{"role": "user", "content": question}]
    body: dict[str, Any] = {"model": model, "stop": ["\n\n"], **kw}
    if steps:
        messages.append({"role": "assistant", "content": STEP_DELIMITER.join(steps) + "\n\n"})
        body |= {"continue_final_message": True, "add_generation_prompt": False}
    r = client.post("/v1/chat/completions", json={"messages": messages, **body})
    assert r.status_code == 200, r.text
    return [c["message"]["content"] for c in r.json()["choices"]]


def test_stepwise_over_http_chat_and_completions_agree(client: httpx.Client) -> None:
    model = "sim-synthetic;step_accuracy=0.8"
    cfg = SimConfig(step_accuracy=0.8)
    p = P6[3]
    steps: list[str] = []
    for depth in range(7):
        chat = _chat_step(client, model, p.question, steps, n=4, seed=10 * depth)
        prompt = p.question + "\n\n" + "".join(s + "\n\n" for s in steps)
        r = client.post(
            "/v1/completions",
            json={"model": model, "prompt": prompt, "n": 4, "seed": 10 * depth, "stop": ["\n\n"]},
        )
        assert r.status_code == 200, r.text
        done = [c for c in r.json()["choices"]]
        assert [c["text"] for c in done] == chat
        assert chat == [next_step(p, steps, 10 * depth + i, cfg) for i in range(4)]
        for c in done:
            assert c["finish_reason"] == "stop" and "\n\n" not in c["text"]
        steps.append(chat[0])
    assert is_final(steps[-1]) and re.fullmatch(
        r"The final answer is \$\\boxed\{[^}]*\}\$\.\nANSWER: \S+", steps[-1]
    )
    assert not any(is_final(s) for s in steps[:-1])


def test_game24_steps_are_moves_and_full_skill_always_solves() -> None:
    skilled = SimConfig(game24_skill=1.0)
    for p in game24_problems(901, 931):
        steps = walk(p, [0] * 4, skilled)  # greedy: seed 0 at every step
        assert len(steps) == 4
        assert all(len(move_lines(s)) == 1 and s == move_lines(s)[0] for s in steps[:3])
        assert judge_chunks(p, steps) == [GOOD] * 4
        answer = extract_answer(steps[-1])
        assert steps[-1] == final_step(answer or "") and is_correct(p, answer)
    # unskilled paths are often dead ends, and still end with an expression
    unskilled = SimConfig(game24_skill=0.0)
    p = game24_problems(950, 951)[0]
    finals = [walk(p, [s, s + 1, s + 2, s + 3], unskilled)[-1] for s in range(0, 400, 4)]
    wrong = [f for f in finals if not is_correct(p, extract_answer(f))]
    assert len(wrong) > 30
    assert all(re.search(r"[-+*/]", extract_answer(f) or "") for f in wrong)
