"""The Game of 24 realism knobs: per-puzzle difficulty, a generation's first move vs its later
moves, dead-end misses, and the value judge's own accuracy."""

from __future__ import annotations

import pytest

from ttc_core.search import prompts
from ttc_sim import game24
from ttc_sim.config import ModelNameError, SimConfig, config_for_model
from ttc_sim.judges import parse_judge_prompt, value_vote
from ttc_sim.model import generate
from ttc_sim.steps import STEP_DELIMITER
from ttc_sim.tasks import default_index, game24_problems, synthetic_problems

PUZZLES = game24_problems(901, 1001)
INDEX = default_index()


def test_defaults_leave_every_move_at_game24_skill() -> None:
    cfg = SimConfig(game24_skill=0.3)
    assert game24.move_skills(cfg, PUZZLES[0].id) == (0.3, 0.3)
    same = SimConfig(game24_skill=0.3, game24_propose_skill=0.3, game24_sample_skill=0.3)
    for p in PUZZLES[:10]:
        for seed in range(5):
            assert generate(p, seed, cfg).text == generate(p, seed, same).text


def test_difficulty_is_per_puzzle_deterministic_and_wide() -> None:
    cfg = SimConfig(game24_propose_skill=0.37, game24_sample_skill=0.13, game24_difficulty_sd=1.2)
    skills = [game24.move_skills(cfg, p.id) for p in PUZZLES]
    assert skills == [game24.move_skills(cfg, p.id) for p in PUZZLES]  # drawn once per puzzle
    # Same puzzle, same shift: the first-move skill is always the higher one.
    assert all(first > later for first, later in skills)
    later = sorted(s for _, s in skills)
    assert later[5] < 0.03 and later[-5] > 0.4  # some puzzles nearly hopeless, some easy
    # The median puzzle is near the knob's value (d ~ N(0, 1) has median 0).
    assert 0.08 < later[50] < 0.2
    assert game24.skill_on(0.0, 3.0) == 0.0 and game24.skill_on(1.0, -3.0) == 1.0
    assert game24.skill_on(0.5, 0.0) == 0.5
    assert game24.skill_on(0.5, 1.0) < 0.5 < game24.skill_on(0.5, -1.0)


def test_dead_end_misses_and_first_move_skill() -> None:
    # First move always keeps 24 reachable, every later move misses into a dead end.
    cfg = SimConfig(game24_propose_skill=1.0, game24_sample_skill=0.0, game24_mistakes="dead_end")
    for p in PUZZLES[:20]:
        for seed in range(3):
            s = generate(p, seed, cfg)
            assert s.steps_correct == [True, False, False]
            assert not s.correct
            # A step-level proposal continuing the first move is that generation's first
            # move: made on the board the prompt shows, so it keeps 24 reachable.
            prefix = s.steps[0] + STEP_DELIMITER
            cont = generate(p, seed + 100, cfg, prefix)
            assert cont.steps_correct[0] is True
    # With random misses a miss can still keep 24 reachable; with dead ends it never does.
    blind = SimConfig(game24_skill=0.0, game24_mistakes="dead_end")
    assert not any(generate(p, 0, blind).steps_correct[0] for p in PUZZLES)
    lucky = SimConfig(game24_skill=0.0)
    assert any(generate(p, seed, lucky).steps_correct[0] for p in PUZZLES for seed in range(3))


def test_one_sample_solves_first_times_later_squared() -> None:
    """With dead-end misses a sample solves with probability q * s^2 (three moves; every
    board of these puzzles has both kinds of move): here 0.6 * 0.5^2 = 0.15."""
    cfg = SimConfig(game24_propose_skill=0.6, game24_sample_skill=0.5, game24_mistakes="dead_end")
    p = PUZZLES[0]
    rate = sum(generate(p, seed, cfg).correct for seed in range(2000)) / 2000
    assert abs(rate - 0.15) < 0.03  # sd of the estimate: 0.008


def test_value_judge_has_its_own_accuracy_for_game24() -> None:
    cfg = SimConfig(judge_accuracy=0.0, game24_value_accuracy=1.0)
    g = PUZZLES[0]
    live = parse_judge_prompt(prompts.value_prompt(g.question, [g.steps[0]]), INDEX)
    assert live is not None
    assert all(value_vote(live, seed, cfg).text in ("sure", "likely") for seed in range(30))
    # Other families keep judge_accuracy (0 here: every vote has the wrong polarity).
    m = synthetic_problems(1, seed=3, steps=4)[0]
    steps = list(m.steps[:2])
    other = parse_judge_prompt(prompts.value_prompt(m.question, steps), INDEX)
    assert other is not None and other.first_bad is None
    assert all(value_vote(other, seed, cfg).text == "impossible" for seed in range(30))


def test_knobs_in_the_model_name() -> None:
    _, cfg = config_for_model(
        SimConfig(),
        "sim-game24;game24_propose_skill=0.37;game24-sample-skill=0.13;"
        "game24_difficulty_sd=1.2;game24_mistakes=dead_end;game24_value_accuracy=0.7",
    )
    assert cfg.game24_propose_skill == 0.37 and cfg.game24_sample_skill == 0.13
    assert cfg.game24_difficulty_sd == 1.2 and cfg.game24_mistakes == "dead_end"
    assert cfg.game24_value_accuracy == 0.7
    for bad in ("game24_mistakes=sometimes", "game24_difficulty_sd=-1", "game24_sample_skill=2"):
        with pytest.raises(ModelNameError, match="game24_"):
            config_for_model(SimConfig(), f"sim-game24;{bad}")
