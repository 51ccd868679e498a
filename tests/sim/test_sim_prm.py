"""The process reward model: per-step scores, the pooling and JSON endpoints, and a small
step-level beam search that the scores make work."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

import httpx
import pytest

from ttc_sim.answers import extract_answer
from ttc_sim.config import SimConfig
from ttc_sim.game24 import split_moves, start_items
from ttc_sim.model import generate
from ttc_sim.prm import parse_pooling_text, step_scores
from ttc_sim.steps import (
    BAD,
    GOOD,
    UNKNOWN,
    corrupt_step,
    is_correct,
    is_final,
    judge_chunks,
    split_chunks,
)
from ttc_sim.tasks import default_index, game24_problem, gsm8k_problems, synthetic_problems

P6 = synthetic_problems(30, seed=33, steps=6)
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def qwen_input(question: str, steps: list[str]) -> str:
    """The text vLLM scores for Qwen2.5-Math-PRM (its chat template applied by the client)."""
    return (
        f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
        "<|im_start|>assistant\n"
        + "".join(s + "<extra_0>" for s in steps)
        + "<|im_end|><|endoftext|>"
    )


def test_scores_separate_good_and_bad_steps() -> None:
    cfg = SimConfig(step_accuracy=0.7)
    good: list[float] = []
    bad: list[float] = []
    after_bad: list[float] = []
    for p in P6:
        for seed in range(8):
            steps = split_chunks(generate(p, seed, cfg).text)
            verdicts = judge_chunks(p, steps)
            scores = step_scores(p, steps, cfg)
            assert len(scores) == len(steps) and all(0 < x < 1 for x in scores)
            first_bad = verdicts.index(BAD) if BAD in verdicts else len(steps)
            for i, (v, x) in enumerate(zip(verdicts, scores, strict=True)):
                assert v != UNKNOWN
                (good if v == GOOD else bad).append(x)
                if i > first_bad:
                    after_bad.append(x)
    assert len(good) > 200 and len(bad) > 200
    assert statistics.mean(good) > statistics.mean(bad) + 0.45
    assert statistics.mean(after_bad) < 0.3  # a step after a wrong one is wrong for the PRM
    # noisy: some good steps score low and some bad ones high
    assert 0.05 < sum(x < 0.5 for x in good) / len(good) < 0.3
    assert 0.05 < sum(x > 0.5 for x in bad) / len(bad) < 0.3


def test_scores_are_deterministic_per_prefix_and_the_noise_knob_works() -> None:
    p = gsm8k_problems()[2]
    cfg = SimConfig(step_accuracy=0.5)
    steps = split_chunks(generate(p, 4, cfg).text)
    scores = step_scores(p, steps, cfg)
    assert scores == step_scores(p, steps, cfg)
    for k in range(1, len(steps)):  # a step's score depends only on the path up to it
        assert step_scores(p, steps[:k], cfg) == scores[:k]
    exact = step_scores(p, steps, SimConfig(prm_noise=0))
    sig = 1 / (1 + math.exp(-2.2))
    verdicts = judge_chunks(p, steps)
    assert exact == [pytest.approx(sig if v == GOOD else 1 - sig) for v in verdicts]
    assert step_scores(p, ["I am not sure what to do."], SimConfig(prm_noise=0)) == [0.5]


def test_game24_steps() -> None:
    g = game24_problem((1, 1, 4, 6))
    assert g is not None
    exact = SimConfig(prm_noise=0)
    assert judge_chunks(g, g.steps) == [GOOD] * 3
    good, bad = split_moves(start_items(g.numbers))
    assert all(judge_chunks(g, [m.line]) == [GOOD] for m in good)
    assert all(judge_chunks(g, [m.line]) == [BAD] for m in bad)
    dead = "6 / 4 = 3/2 (left: 1 1 3/2)"
    assert judge_chunks(g, [dead, "1 + 1 = 2 (left: 3/2 2)"]) == [BAD, BAD]
    assert judge_chunks(g, ["1 + 1 = 3 (left: 3 4 6)"]) == [BAD]  # bad arithmetic
    assert judge_chunks(g, ["1 + 9 = 10 (left: 1 4 10)"]) == [BAD]  # 9 is not on the board
    assert judge_chunks(g, ["6 * 4 = 24 (left: 1 1 25)"]) == [BAD]  # wrong numbers left
    assert judge_chunks(g, ["6*4=24 (left: 1 1 24)"]) == [GOOD]  # other spacing, same move
    assert judge_chunks(g, ["Let's think.", g.steps[0]]) == [UNKNOWN, GOOD]
    scores = step_scores(g, [g.steps[0], dead], exact)
    assert scores[0] > 0.85 and scores[1] < 0.15


def _pool(client: httpx.Client, path: str = "/pooling", **body: Any) -> dict[str, Any]:
    body.setdefault("model", "sim-prm")
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_pooling_endpoint(client: httpx.Client, sim: Any) -> None:
    cfg = SimConfig(step_accuracy=0.6)
    p, q = P6[0], gsm8k_problems()[7]
    steps_p = split_chunks(generate(p, 2, cfg).text)
    steps_q = split_chunks(generate(q, 3, cfg).text)[:3]
    sim.reset_metrics()
    one = _pool(client, input=qwen_input(p.question, steps_p))
    assert one["object"] == "list" and one["model"] == "sim-prm" and one["id"]
    assert isinstance(one["created"], int)
    assert one["usage"]["prompt_tokens"] == one["usage"]["total_tokens"] > 0
    [item] = one["data"]
    assert item["index"] == 0 and item["object"] == "pooling"
    pairs = item["data"]
    assert len(pairs) == len(steps_p)
    assert all(a + b == pytest.approx(1.0) for a, b in pairs)
    assert [b for _, b in pairs] == pytest.approx(step_scores(p, steps_p, SimConfig()))
    batch = _pool(
        client,
        path="/v1/pooling",
        model="sim-prm;prm_noise=0",
        input=[qwen_input(p.question, steps_p), f"{q.question}\n\n" + "<extra_0>".join(steps_q)],
    )
    assert [d["index"] for d in batch["data"]] == [0, 1]
    assert len(batch["data"][1]["data"]) == 2  # two tags: the third step is not tagged
    exact_p = step_scores(p, steps_p, SimConfig(prm_noise=0))
    assert [b for _, b in batch["data"][0]["data"]] == pytest.approx(exact_p)
    messages = [
        {"role": "system", "content": QWEN_SYSTEM},
        {"role": "user", "content": p.question},
        {"role": "assistant", "content": "".join(s + "<extra_0>" for s in steps_p)},
    ]
    chat = _pool(client, model="sim-prm;prm_noise=0", messages=messages)
    assert chat["data"][0]["data"] == batch["data"][0]["data"]
    m = sim.metrics
    assert m["prm_requests"] == 3 and m["prm_items"] == 4
    assert m["prm_steps"] == 2 * len(steps_p) + len(steps_p) + 2
    prom = client.get("/metrics", params={"format": "prometheus"}).text
    assert "ttc_sim_prm_requests_total 3" in prom and "ttc_sim_prm_items_total 4" in prom
    assert 'ttc_sim_judge_choices_total{kind="value"}' in prom
    for bad in ({"input": 3}, {"input": []}, {"messages": "x"}, {"model": "sim;prm_noise=-1"}):
        assert client.post("/pooling", json={"input": "x", **bad}).status_code == 400


def test_parse_pooling_text_templates() -> None:
    p = gsm8k_problems()[0]
    index = default_index()
    steps = ["Janet sells 16 - 3 - 4 = 9 duck eggs a day.", "She makes 9 * 2 = $18 every day."]
    tagged = "".join(s + "<extra_0>" for s in steps)
    llama = (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
        f"{p.question}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{tagged}<|eot_id|>"
    )
    for text in (qwen_input(p.question, steps), llama, p.question + "\n\n" + tagged):
        assert parse_pooling_text(text, index) == (p, steps)


def test_prm_json_endpoint(client: httpx.Client) -> None:
    p = P6[1]
    steps = [*p.steps[:2], corrupt_step(p.steps[2], random.Random(2))]
    r = client.post(
        "/v1/prm", json={"model": "sim-prm;prm_noise=0", "prompt": p.question, "steps": steps}
    )
    assert r.status_code == 200, r.text
    scores = r.json()["step_scores"]
    assert scores == pytest.approx(step_scores(p, steps, SimConfig(prm_noise=0)))
    assert scores[0] > 0.85 and scores[1] > 0.85
    items = [{"prompt": p.question, "steps": steps}, {"prompt": P6[2].question, "steps": []}]
    r = client.post("/v1/prm", json={"items": items})
    assert r.status_code == 200
    results = r.json()["results"]
    assert results[0]["step_scores"] == pytest.approx(step_scores(p, steps, SimConfig()))
    assert results[1] == {"step_scores": []}
    for bad in ({"prompt": 1, "steps": []}, {"prompt": "x", "steps": "y"}, {"items": []}):
        assert client.post("/v1/prm", json=bad).status_code == 400


def _beam_search(p: Any, cfg: SimConfig, width: int = 4, expand: int = 4) -> bool:
    """search-and-learn's step beam search, scoring paths by the PRM's last step score."""
    beams: list[list[str]] = [[]]
    finished: list[tuple[float, list[str]]] = []
    seed = 0
    while beams:
        candidates: list[tuple[float, list[str]]] = []
        for beam in beams:
            prefix = "\n\n" + "\n\n".join(beam) + "\n\n" if beam else ""
            for _ in range(expand):
                seed += 1
                step = generate(p, seed, cfg, prefix).text.split("\n\n")[0]
                path = [*beam, step]
                candidates.append((step_scores(p, path, cfg)[-1], path))
        candidates.sort(key=lambda c: -c[0])
        beams = []
        for score, path in candidates[:width]:
            (finished.append((score, path)) if is_final(path[-1]) else beams.append(path))
    best = max(finished, key=lambda c: c[0])[1]
    return is_correct(p, extract_answer(best[-1]))


def test_step_beam_search_with_the_prm_beats_sampling() -> None:
    cfg = SimConfig(step_accuracy=0.8)
    problems = P6[:15]
    single = statistics.mean(generate(p, s, cfg).correct for p in problems for s in range(20))
    assert abs(single - 0.8**6) < 0.08
    beam = statistics.mean(_beam_search(p, cfg) for p in problems)
    assert beam >= 0.8 > single + 0.4
    noisy = SimConfig(step_accuracy=0.8, prm_noise=2.0)  # a near-useless PRM helps far less
    assert statistics.mean(_beam_search(p, noisy) for p in problems) < beam
