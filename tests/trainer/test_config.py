"""TrainConfig: YAML + dotted overrides, round trip, errors that name the field, help from attribute docstrings."""

from __future__ import annotations

import argparse

import pytest

from dynamo_rl.presets import build_method_config
from dynamo_rl.run.config import OptimConfig, config_from_dict, config_to_dict
from dynamo_rl.run.config_docs import field_docs
from dynamo_rl.run.config_files import load_config, parse_override
from dynamo_rl.train_cli import add_arguments, collect_overrides, demo_config_path


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: grpo\npreset: paper\nloss: {eps_high: 0.3}\noptim: {lr: 1.0e-5, betas: [0.9, 0.95]}\n"
                    "run: {steps: 7}\n")
    config = load_config(path, [parse_override("loss.eps_low=0.1"), parse_override("run.steps=9"),
                                ("allocation.n_max", 20), parse_override("modulation.alpha=null")])
    assert config.method_name == "grpo" and config.preset == "paper"
    # preset, then method (grpo: uniform allocation, modulation off), then the file and command line
    expected = build_method_config("grpo", "paper", {"loss": {"eps_high": 0.3, "eps_low": 0.1},
                                                     "allocation": {"n_max": 20}, "modulation": {"alpha": None}})
    assert config.method == expected
    assert config.method.allocation.allocator == "uniform"
    assert config.optim.lr == 1e-5 and config.optim.betas == (0.9, 0.95)
    assert config.run.steps == 9
    assert config_from_dict(config_to_dict(config)) == config


@pytest.mark.parametrize("overrides,message", [
    ([("optim.lr", -1.0)], "optim.lr"),
    ([("optim.lrr", 1.0)], "unknown field optim.lrr"),
    ([("rollout.max_new_tokens", "many")], "rollout.max_new_tokens"),
    ([("allocation.n_min", 1)], "allocation.n_min"),
    ([("loss.loss_agg_mode", "mean")], "loss.loss_agg_mode"),
    ([("run.device", "tpu")], "run.device"),
    ([("method", "ppo")], "method"),
    ([("preset", "fast")], "preset"),
    ([("training.steps", 3)], "training.steps"),
    ([("rollout.prompts_per_step", True)], "rollout.prompts_per_step"),
])
def test_errors_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        load_config(None, overrides)


def test_bad_yaml_section_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim: 3\n")
    with pytest.raises(ValueError, match="optim"):
        load_config(path)
    path.write_text("trainer: {}\n")
    with pytest.raises(ValueError, match="unknown config key 'trainer'"):
        load_config(path)


def test_help_comes_from_attribute_docstrings():
    docs = field_docs(OptimConfig)
    assert docs["lr"].startswith("Peak learning rate")
    from dynamo_rl.train_cli import full_help

    text = full_help()
    assert "--optim.lr" in text and "Peak learning rate" in text
    assert "--modulation.mu_max" in text and "Largest GC factor" in text  # MethodConfig docstrings too
    assert "``" not in text  # plain text, no reST markup


def test_short_help_is_short_and_plain():
    parser = argparse.ArgumentParser(prog="dynamo-rl train")
    add_arguments(parser)
    text = parser.format_help()
    assert len(text.splitlines()) < 50
    assert "--help-all" in text and "--optim.lr" not in text and "``" not in text


def test_command_line_flags_override_in_order():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--method", "no_gc", "--loss.eps_high", "0.25", "--set", "run.steps=3",
                              "--model", "m", "--output", "out"])
    overrides = dict(collect_overrides(args))
    assert overrides == {"method": "no_gc", "loss.eps_high": 0.25, "run.steps": 3, "data.model": "m",
                         "run.output_dir": "out"}
    config = load_config(demo_config_path(), list(overrides.items()))
    assert config.method.modulation.gradient_compensation is False and config.method.loss.eps_high == 0.25


def test_packaged_demo_config_matches_repository_copy():
    from pathlib import Path

    repo_copy = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    assert demo_config_path().read_text() == repo_copy.read_text()
    config = load_config(demo_config_path())
    assert config.data.model == "demo" and config.method_name == "dynamo"


def test_gpu_config_is_valid():
    from pathlib import Path

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "qwen2.5-math-1.5b-dapo-1gpu.yaml")
    assert config.rollout.backend == "vllm" and config.method.allocation.n_min == 8


def test_a_saved_dynamo_config_with_method_grpo_trains_grpo(tmp_path):
    """--config RUN/config.yaml --method grpo: the method decides the method sections (uniform allocation, no
    modulation, the GRPO loss); the fields the user set in the original run are kept; config.yaml says what ran."""
    from dynamo_rl.run.config import config_from_dict, config_to_dict
    from dynamo_rl.run.config_files import load_config, save_config
    from dynamo_rl.train_cli import demo_config_path

    dynamo = load_config(demo_config_path())
    assert dynamo.method.allocation.allocator == "official" and dynamo.method.modulation.enabled
    save_config(dynamo, tmp_path / "config.yaml")
    grpo = load_config(tmp_path / "config.yaml", [("method", "grpo")])
    assert grpo.method_name == "grpo"
    assert grpo.method.allocation.allocator == "uniform" and not grpo.method.modulation.enabled
    assert grpo.method.loss.eps_high == 0.2  # the GRPO backbone, not the official preset's 0.28
    assert (grpo.method.allocation.mean_rollouts, grpo.method.allocation.n_min) == (8, 4)  # explicit in demo.yaml
    assert grpo.rollout == dynamo.rollout and grpo.optim == dynamo.optim
    assert config_to_dict(grpo)["method"] == "grpo" and config_from_dict(config_to_dict(grpo)) == grpo


def test_an_explicit_value_equal_to_a_default_still_wins():
    from dynamo_rl.run.config_files import load_config

    # allocator "official" is the dataclass default, but the paper preset picks waterfill: the user's choice wins
    config = load_config(None, [("preset", "paper"), ("allocation.allocator", "official")])
    assert config.method.allocation.allocator == "official" and config.explicit == ("allocation.allocator",)
    # and it survives a change of method through the saved config
    from dynamo_rl.run.config import config_from_dict, config_to_dict

    again = config_from_dict(config_to_dict(config), [("method", "no_gc")])
    assert again.method.allocation.allocator == "official" and not again.method.modulation.gradient_compensation
