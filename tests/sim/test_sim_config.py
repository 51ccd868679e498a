from __future__ import annotations

import argparse

import pytest

from ttc_sim.config import ModelNameError, SimConfig, config_for_model
from ttc_sim.runner import add_sim_arguments, config_from_args


def test_model_name_overrides() -> None:
    base = SimConfig()
    name, cfg = config_for_model(base, "sim-gsm8k")
    assert name == "sim-gsm8k" and cfg == base
    name, cfg = config_for_model(base, "sim-gsm8k;sample_accuracy=0.3;distractors=4")
    assert name == "sim-gsm8k" and cfg.sample_accuracy == 0.3 and cfg.distractors == 4
    _, cfg = config_for_model(base, "x; reject-n = true ;sample_accuracy=none")
    assert cfg.reject_n is True and cfg.sample_accuracy is None
    for bad in ("sim;nope=1", "sim;step_accuracy=2", "sim;slots=3", "sim;junk"):
        with pytest.raises(ModelNameError):
            config_for_model(base, bad)


def test_fault_rates_must_sum_to_one() -> None:
    with pytest.raises(ValueError):
        SimConfig(fail_500_rate=0.6, reset_rate=0.6)


def test_argparse_helpers() -> None:
    parser = argparse.ArgumentParser()
    add_sim_arguments(parser)
    ns = parser.parse_args(
        ["--base-latency-s", "0.2", "--slots", "8", "--reject-n", "--sample-accuracy", "0.4"]
    )
    cfg = config_from_args(ns)
    assert cfg.base_latency_s == 0.2 and cfg.slots == 8 and cfg.reject_n
    assert cfg.sample_accuracy == 0.4 and cfg.step_accuracy == SimConfig().step_accuracy
    assert config_from_args(parser.parse_args([])) == SimConfig()
    help_text = parser.format_help()
    for name in SimConfig.model_fields:
        assert "--" + name.replace("_", "-") in help_text
