"""Value votes, critiques and revisions answering ttc's own prompt templates."""

from __future__ import annotations

import random
import statistics
from typing import Any

import httpx
import pytest

from ttc_core.search import prompts
from ttc_sim import judges
from ttc_sim.answers import extract_answer
from ttc_sim.config import SimConfig
from ttc_sim.judges import JudgeRequest, critique, parse_judge_prompt, revise, value_vote
from ttc_sim.model import generate
from ttc_sim.steps import BAD, corrupt_step, is_correct, split_chunks
from ttc_sim.tasks import Problem, default_index, game24_problem, synthetic_problems

P6 = synthetic_problems(40, seed=44, steps=6)
INDEX = default_index()


def test_markers_are_the_engines() -> None:
    assert judges.VALUE_MARKER == prompts.VALUE_MARKER
    assert judges.CRITIQUE_MARKER == prompts.CRITIQUE_MARKER
    assert judges.REVISE_MARKER == prompts.REVISE_MARKER
    assert prompts.FEEDBACK_LINE.strip().startswith(judges.FEEDBACK_PREFIX)
    assert judges.parse_judge_prompt(P6[0].question, INDEX) is None


def _value_req(p: Problem, steps: list[str]) -> JudgeRequest:
    req = parse_judge_prompt(prompts.value_prompt(p.question, steps), INDEX)
    assert req is not None and req.kind == "value" and req.problem == p
    return req


def _paths(cfg: SimConfig, count: int = 20) -> list[tuple[Problem, list[str], bool]]:
    """Partial paths (3 steps) with whether they are right so far."""
    out = []
    for p in P6[:count]:
        for seed in range(4):
            steps = split_chunks(generate(p, seed, cfg).text)[:3]
            req = _value_req(p, steps)
            out.append((p, steps, req.first_bad is None))
    return out


@pytest.mark.parametrize("accuracy", [0.8, 0.6])
def test_value_votes_are_right_with_judge_accuracy(accuracy: float) -> None:
    cfg = SimConfig(step_accuracy=0.8, judge_accuracy=accuracy)
    words: dict[bool, list[str]] = {True: [], False: []}
    for p, steps, possible in _paths(cfg):
        req = _value_req(p, steps)
        for seed in range(10):
            vote = value_vote(req, seed, cfg)
            assert vote.text in ("sure", "likely", "impossible")
            assert vote.correct == ((vote.text != "impossible") == possible)
            words[possible].append(vote.text)
    assert len(words[True]) > 200 and len(words[False]) > 200
    right = [w != "impossible" for w in words[True]] + [w == "impossible" for w in words[False]]
    assert abs(statistics.mean(right) - accuracy) < 0.05
    # mostly sure/likely for a live path, mostly impossible/likely for a dead one
    live, dead = words[True], words[False]
    assert live.count("impossible") < live.count("sure") + live.count("likely")
    assert dead.count("sure") < dead.count("impossible") + dead.count("likely") / 2
    mean_value = {
        k: statistics.mean(prompts.parse_value_word(w) or 0 for w in v) for k, v in words.items()
    }
    assert mean_value[True] > mean_value[False] + 0.2


def test_value_judge_for_game24_judges_the_numbers_left() -> None:
    g = game24_problem((1, 1, 4, 6))
    assert g is not None
    sure = SimConfig(judge_accuracy=1.0)
    live = value_vote(_value_req(g, [g.steps[0]]), 3, sure).text
    dead = value_vote(_value_req(g, ["6 / 4 = 3/2 (left: 1 1 3/2)"]), 3, sure).text
    illegal = value_vote(_value_req(g, ["6 * 4 = 25 (left: 1 1 25)"]), 3, sure).text
    assert live in ("sure", "likely") and dead == "impossible" and illegal == "impossible"
    assert value_vote(_value_req(g, []), 0, sure).text in ("sure", "likely")  # "(none)"


def _chat(client: httpx.Client, content: str, **body: Any) -> list[str]:
    body.setdefault("model", "sim")
    r = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": content}], **body}
    )
    assert r.status_code == 200, r.text
    return [c["message"]["content"] for c in r.json()["choices"]]


def test_value_votes_over_http(client: httpx.Client, sim: Any) -> None:
    p = P6[5]
    good = p.steps[:3]
    bad = [p.steps[0], corrupt_step(p.steps[1], random.Random(0)), p.steps[2]]
    sim.reset_metrics()
    votes_good = _chat(client, prompts.value_prompt(p.question, good), n=30, seed=1)
    votes_bad = _chat(client, prompts.value_prompt(p.question, bad), n=30, seed=1)
    assert len(set(votes_good)) > 1  # n seeded choices are independent votes
    assert votes_good == _chat(client, prompts.value_prompt(p.question, good), n=30, seed=1)
    value = [
        statistics.mean(prompts.parse_value_word(v) or 0 for v in vs)
        for vs in (votes_good, votes_bad)
    ]
    assert value[0] > value[1] + 0.2
    r = client.post(
        "/v1/completions",
        json={
            "model": "sim;judge_accuracy=1",
            "prompt": prompts.value_prompt(p.question, bad),
            "n": 5,
        },
    )
    assert {c["text"] for c in r.json()["choices"]} == {"impossible"}
    m = sim.metrics
    assert m["value_choices"] == 95 and m["choices_total"] == 95


def _solutions(cfg: SimConfig, count: int = 40, seeds: int = 6) -> list[tuple[Problem, str]]:
    return [(p, generate(p, seed, cfg).text) for p in P6[:count] for seed in range(seeds)]


def _critique_req(p: Problem, solution: str, feedback: str | None = None) -> JudgeRequest:
    req = parse_judge_prompt(prompts.critique_prompt(p.question, solution, feedback), INDEX)
    assert req is not None and req.kind == "critique" and req.problem == p
    return req


def test_critiques_name_the_first_wrong_step_with_critic_accuracy() -> None:
    cfg = SimConfig(step_accuracy=0.85)
    hits: list[bool] = []
    hits_feedback: list[bool] = []
    for k, (p, text) in enumerate(_solutions(cfg)):
        req = _critique_req(p, text)
        out = critique(req, k, cfg)
        bad = req.first_bad
        if out.correct:
            expected = "No errors." if bad is None else f"Step {bad + 1} is incorrect: "
            assert out.text.startswith(expected)
        hits.append(out.correct)
        if bad is not None:
            answer = extract_answer(text)
            fed = _critique_req(p, text, f"the answer {answer} is wrong.")
            assert fed.feedback_wrong
            hits_feedback.append(critique(fed, k, cfg).correct)
    assert abs(statistics.mean(hits) - 0.7) < 0.06
    assert len(hits_feedback) > 60 and statistics.mean(hits_feedback) > 0.88
    p = P6[0]
    right = generate(p, 0, SimConfig(step_accuracy=1.0)).text
    assert critique(_critique_req(p, right), 0, SimConfig(critic_accuracy=1.0)).text == "No errors."
    assert not _critique_req(p, right, "the answer is correct.").feedback_wrong
    assert not _critique_req(p, right, "no errors found.").feedback_wrong
    assert _critique_req(p, right, "expected 12, got 14: incorrect.").feedback_wrong


def _revise_req(p: Problem, solution: str, text: str) -> JudgeRequest:
    req = parse_judge_prompt(prompts.revise_prompt(p.question, solution, text), INDEX)
    assert req is not None and req.kind == "revise" and req.problem == p
    return req


def test_revision_keeps_the_steps_before_a_real_error_and_improves() -> None:
    cfg = SimConfig(step_accuracy=0.8, critic_accuracy=1.0)
    for k, (p, text) in enumerate(_solutions(cfg, 15, 4)):
        req = _critique_req(p, text)
        bad = req.first_bad
        if bad is None:
            continue
        note = critique(req, k, cfg).text
        new = revise(_revise_req(p, text, note), k, SimConfig(step_accuracy=0.8, revise_gain=1.0))
        assert new.correct and is_correct(p, new.answer)  # gain 1: the rest is all right
        old_steps, new_steps = split_chunks(text), split_chunks(new.text)
        assert new_steps[:bad] == old_steps[:bad] and len(new_steps) == 7
        assert new.text.endswith(f"ANSWER: {new.answer}")
        # a critique that names the wrong step gets a plain new sample
        wrong = f"Step {bad + 2} is incorrect: the calculation in this step is wrong."
        plain = revise(_revise_req(p, text, wrong), k, SimConfig(step_accuracy=1.0, step_variety=0))
        assert split_chunks(plain.text)[:-1] == p.steps


def test_self_refine_round_improves_accuracy(client: httpx.Client, sim: Any) -> None:
    model = "sim;step_accuracy=0.8"
    before: list[bool] = []
    after: list[bool] = []
    sim.reset_metrics()
    for i, p in enumerate(P6[:30]):
        [text] = _chat(client, p.question, model=model, seed=i)
        before.append(is_correct(p, extract_answer(text)))
        [note] = _chat(client, prompts.critique_prompt(p.question, text), model=model, seed=i)
        assert note == "No errors." or note.startswith("Step ")
        [new] = _chat(client, prompts.revise_prompt(p.question, text, note), model=model, seed=i)
        assert split_chunks(new)[-1].startswith("The final answer is")
        after.append(is_correct(p, extract_answer(new)))
    assert statistics.mean(after) > statistics.mean(before) + 0.15
    m = sim.metrics
    assert m["critique_choices"] == 30 and m["revise_choices"] == 30
    # and without a useful critic, a revision is no better than a fresh sample
    plain = SimConfig(step_accuracy=0.8, critic_accuracy=0.0)
    rates = []
    for k, (p, text) in enumerate(_solutions(plain, 40, 5)):
        note = critique(_critique_req(p, text), k, plain).text
        rates.append(revise(_revise_req(p, text, note), k, plain).correct)
    assert abs(statistics.mean(rates) - 0.8**6) < 0.08


def test_revision_after_no_errors_keeps_a_right_solution() -> None:
    p = P6[2]
    right = generate(p, 1, SimConfig(step_accuracy=1.0)).text
    kept = revise(_revise_req(p, right, "No errors."), 0, SimConfig(step_accuracy=0.0))
    assert kept.text == right and kept.correct
    partial = "\n\n".join(split_chunks(right)[:3])
    finished = revise(_revise_req(p, partial, "No errors."), 0, SimConfig(step_accuracy=1.0))
    assert finished.text.startswith(partial) and finished.correct
    assert BAD not in _revise_req(p, right, "No errors.").verdicts
