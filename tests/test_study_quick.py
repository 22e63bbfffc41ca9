"""Statistics helpers of the evidence study (experiments/stats.py), checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from experiments.stats import mean_curve, paired_difference, rollouts_to_target, t_interval, t_quantile


def test_t_interval_hand_computed():
    # values 1..5: mean 3, sample sd sqrt(2.5) = 1.5811; t_{0.975,4} = 2.7764; half = 2.7764 * 1.5811 / sqrt(5)
    iv = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert iv.n == 5
    assert iv.mean == pytest.approx(3.0)
    assert iv.half_width == pytest.approx(1.9632, abs=1e-3)
    assert (iv.low, iv.high) == pytest.approx((3.0 - 1.9632, 3.0 + 1.9632), abs=1e-3)
    assert iv.format() == "300.0 ± 196.3"


def test_t_interval_two_values_and_degenerate_cases():
    # n = 2: mean 0.5, sd = 0.1414, t_{0.975,1} = 12.706 -> half = 12.706 * 0.1414 / 1.4142 = 1.2706
    iv = t_interval([0.4, 0.6])
    assert iv.half_width == pytest.approx(1.2706, abs=1e-3)
    one = t_interval([0.7])
    assert one.mean == pytest.approx(0.7) and math.isnan(one.half_width) and one.format() == "70.0"
    none = t_interval([None, float("nan")])
    assert none.n == 0 and none.format() == "–"
    assert t_interval([0.3, 0.3, 0.3]).half_width == 0.0


def test_t_quantile_matches_table():
    assert t_quantile(0.95, 4) == pytest.approx(2.776, abs=1e-3)
    assert t_quantile(0.95, 2) == pytest.approx(4.303, abs=1e-3)
    with pytest.raises(ValueError, match="df"):
        t_quantile(0.95, 0)


def test_paired_difference_uses_common_seeds_only():
    a = {0: 0.5, 1: 0.6, 2: 0.7, 3: 0.9}
    b = {0: 0.4, 1: 0.4, 2: 0.4}
    iv = paired_difference(a, b)  # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, half = 4.303 * 0.1 / sqrt(3)
    assert iv.n == 3
    assert iv.mean == pytest.approx(0.2)
    assert iv.half_width == pytest.approx(0.24843, abs=1e-4)


def test_rollouts_to_target_interpolates_between_points():
    rollouts = [0, 100, 200, 300]
    acc = [0.2, 0.3, 0.5, 0.6]
    # target 0.4 lies halfway between (100, 0.3) and (200, 0.5) -> 150
    assert rollouts_to_target(rollouts, acc, 0.4) == pytest.approx(150.0)
    assert rollouts_to_target(rollouts, acc, 0.5) == pytest.approx(200.0)
    assert rollouts_to_target(rollouts, acc, 0.1) == 0.0
    assert rollouts_to_target(rollouts, acc, 0.61) is None
    # first crossing counts even if the curve drops later
    assert rollouts_to_target([0, 10, 20], [0.0, 0.8, 0.1], 0.4) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="increasing"):
        rollouts_to_target([0, 0, 1], [0.1, 0.2, 0.3], 0.2)


def test_mean_curve_on_common_points():
    xs, ys = mean_curve([([0, 10, 20], [0.0, 0.2, 0.4]), ([0, 10, 20, 30], [0.2, 0.4, 0.6, 0.9])])
    assert xs.tolist() == [0.0, 10.0, 20.0]
    assert ys.tolist() == pytest.approx([0.1, 0.3, 0.5])


def test_minimum_detectable_effect_and_p_value_hand_computed():
    from experiments.stats import minimum_detectable_effect, paired_t_pvalue

    # d = [0.01, 0.02, -0.01, 0.03, 0.0]: mean 0.01, s_d = sqrt(0.001 / 4) = 0.015811; t_{0.975,4} = 2.7764,
    # t_{0.8,4} = 0.9410 -> MDE = 3.7174 * 0.015811 / sqrt(5) = 0.026286; t = 0.01 / (0.015811 / sqrt 5) = 1.4142
    d = [0.01, 0.02, -0.01, 0.03, 0.0]
    assert minimum_detectable_effect(d) == pytest.approx(0.026286, abs=2e-5)
    assert paired_t_pvalue(d) == pytest.approx(0.2302, abs=2e-4)
    assert math.isnan(minimum_detectable_effect([0.1]))


def test_sample_efficiency_on_hand_made_curves():
    from experiments.stats import sample_efficiency

    ref = {s: ([0, 100, 200, 300], [0.2, 0.3, 0.4, 0.45]) for s in range(4)}
    fast = {s: ([0, 100, 200, 300], [0.2, 0.35, 0.42, 0.46]) for s in range(4)}
    eff = sample_efficiency(fast, ref, gain_fraction=0.5, final_points=1, n_boot=50)
    # target = 0.2 + 0.5 * (0.45 - 0.2) = 0.325: GRPO crosses it at 125 rollouts, the method at 100 * 0.125 / 0.15
    assert eff.target == pytest.approx(0.325)
    assert eff.reference_rollouts == pytest.approx(125.0) and eff.rollouts == pytest.approx(250 / 3)
    assert eff.ratio == pytest.approx(2 / 3) and eff.ratio_low == pytest.approx(2 / 3)
    assert eff.reference_budget == 300
    # final value = mean of the last 3 points by default: 0.2 + 0.5 * ((0.3 + 0.4 + 0.45) / 3 - 0.2)
    assert sample_efficiency(fast, ref, n_boot=10).target == pytest.approx(0.2 + 0.5 * (1.15 / 3 - 0.2))
    slow = {s: ([0, 100, 200, 300], [0.2, 0.21, 0.22, 0.23]) for s in range(4)}
    never = sample_efficiency(slow, ref, final_points=1, n_boot=20)
    assert never.rollouts is None and never.to_dict()["ratio_high_infinite"] and never.reached_share == 0.0


def test_zero_variance_share_at_start_and_end_of_training():
    from experiments.study_report import WINDOW, _window_share, zero_variance_table

    assert WINDOW == 3

    def run(shares):  # per batch: (all correct, all wrong); step 0 is the warm-start evaluation and is skipped
        curve = [{"step": 0, "curve/heldout": 0.2}]
        curve += [{"step": i + 1, "groups/all_correct_frac": c, "groups/all_wrong_frac": w}
                  for i, (c, w) in enumerate(shares)]
        return {"curve": curve}

    a = run([(0.1, 0.5), (0.1, 0.4), (0.0, 0.3), (0.2, 0.2), (0.3, 0.1), (0.3, 0.0), (0.4, 0.0)])
    b = run([(0.0, 0.6), (0.0, 0.6), (0.0, 0.6), (0.0, 0.6), (0.0, 0.6), (0.0, 0.6), (0.0, 0.6)])
    # start: batches 1-3 of both runs; end: batches 5-7
    assert _window_share([a, b], None, end=False) == pytest.approx((0.6 + 0.5 + 0.3 + 3 * 0.6) / 6)
    assert _window_share([a, b], None, end=True) == pytest.approx((0.4 + 0.3 + 0.4 + 3 * 0.6) / 6)
    assert _window_share([a], "groups/all_correct_frac", end=True) == pytest.approx(1.0 / 3)
    assert _window_share([{"curve": [{"step": 0}]}], None, end=False) is None
    group = {"rows": {"grpo": {"degenerate_start": 0.4, "all_correct_start": 0.03, "all_wrong_start": 0.37,
                               "degenerate_end": 0.368, "all_correct_end": 0.058, "all_wrong_end": 0.31}}}
    table = zero_variance_table(group, ["grpo", "dynamo"])
    assert "| GRPO | 40.0% | 3.0% / 37.0% | 36.8% | 5.8% / 31.0% |" in table and "DynaMO" not in table


def test_sampler_table_reports_generated_discarded_and_rounds():
    from experiments.study_report import sampler_table

    interval = {"mean": 0.25, "low": 0.24, "high": 0.26, "n": 8, "half_width": 0.01}
    group = {"rows": {"grpo": {"n": 8, "rollouts_per_run": 12288.0, "pass@1": interval, "frac_discarded": None,
                               "rounds": None, "efficiency": None},
                      "dapo": {"n": 8, "rollouts_per_run": 12288.0, "pass@1": interval, "frac_discarded": 0.379,
                               "rounds": 1.0, "efficiency": None, "vs_grpo": None}}}
    table = sampler_table(group)
    assert "| GRPO + DAPO dynamic sampling | 8 | 12288 | 37.9% | 1.00 |" in table
    assert "| GRPO | 8 | 12288 | 0.0% | 1.00 |" in table
    assert "no sampler rows" in sampler_table({"rows": {"grpo": group["rows"]["grpo"]}})


def test_study_folder_refuses_other_starting_weights(tmp_path):
    import hashlib
    import json
    import shutil

    from experiments.study import STUDY_MODEL, _check_plan_file, _snapshot_demo_model
    from experiments.study_plan import QUICK_SIZES

    model = _snapshot_demo_model(tmp_path)
    sha = hashlib.sha256((STUDY_MODEL / "model.safetensors").read_bytes()).hexdigest()
    assert sha.startswith("3898e150")  # the weights docs/results.md's study 3 started from
    _check_plan_file(tmp_path, QUICK_SIZES, True, model)
    assert json.loads((tmp_path / "plan.json").read_text())["model_card"]["sha256"] == sha
    _check_plan_file(tmp_path, QUICK_SIZES, True, model)  # same weights: accepted again
    other = tmp_path / "other"
    shutil.copytree(model, other)
    (other / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\1")
    with pytest.raises(SystemExit, match="started from other weights"):
        _check_plan_file(tmp_path, QUICK_SIZES, True, str(other))


@pytest.mark.parametrize("args, message", [
    (["--size", "lr=abc"], "lr must be a number"),
    (["--size", "steps=2.5"], "steps must be an integer"),
    (["--size", "final_ks=1,a"], "final_ks must be comma-separated integers"),
    (["--size", "nope=1"], "expected FIELD=VALUE"),
    (["--model", "/nonexistent/model"], "no model.safetensors there"),
    (["--allocators", "optimal,nope"], "unknown allocator(s) nope"),
    (["--rows", "grpo,nope"], "unknown row 'nope'"),
])
def test_study_cli_refuses_bad_input_in_one_line(tmp_path, capsys, args, message):
    from experiments.study import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--quick", "--output", str(tmp_path / "study"), "--no-report", *args])
    text = str(exit_info.value.code)
    assert message in text and "\n" not in text.strip()
    assert not (tmp_path / "study" / "results").exists()  # nothing ran


def test_full_plan_meets_the_seed_requirements():
    from collections import Counter

    from dynamo_rl.presets import METHODS, PRESETS
    from experiments.study_plan import CORE_ROWS, MAIN_ROWS, PlanOptions, available_allocators, build_plan

    plan = build_plan(PlanOptions(), quiet=True)
    seeds = Counter((s.group, s.row) for s in plan)
    assert all(seeds[("main", row)] >= 16 for row in CORE_ROWS)
    assert all(seeds[("main", row)] >= 8 for row in MAIN_ROWS)
    for name in available_allocators(quiet=True):
        assert seeds[("main", f"alloc_{name}")] >= 8
    assert seeds[("budget", "grpo@4")] >= 8 and seeds[("budget", "dynamo@16")] >= 8
    assert all(s.method in METHODS and s.preset in PRESETS for s in plan)
    assert len({s.run_id for s in plan}) == len(plan)
    variance = [s for s in plan if s.kind == "variance"]
    assert len(variance) == 1 and variance[0].after == "main/grpo/seed0"
    ids = [s.run_id for s in plan]
    assert ids.index("main/grpo/seed0") < ids.index(variance[0].run_id)
    assert next(s for s in plan if s.run_id == "main/grpo/seed0").keep_checkpoints
    # seed-major order: an interrupted study has every row's first seeds before anyone's later seeds
    assert [s.seed for s in plan] == sorted(s.seed for s in plan)


def test_rows_by_name_and_dotted_overrides(tmp_path):
    from dynamo_rl.run.config import config_from_dict
    from experiments.study_plan import Sizes, define_row, resolve_row, row_spec
    from experiments.study_runs import train_config_dict

    name, row = define_row("wide=grpo:theory,loss.eps_high=0.3,allocation.allocator=waterfill")
    assert name == "wide" and row.method == "grpo" and row.preset == "theory"
    assert row.overrides == {"loss.eps_high": 0.3, "allocation.allocator": "waterfill"}
    assert resolve_row("entropy_loss").method == "entropy_loss"  # any method of dynamo_rl.presets is a row
    with pytest.raises(KeyError, match="--row"):
        resolve_row("no_such_row")
    with pytest.raises(ValueError):
        define_row("broken")
    swept = resolve_row("dynamo@4")
    assert swept.overrides["allocation.mean_rollouts"] == 4 and swept.overrides["allocation.n_min"] == 2
    spec = row_spec("main", "wide", 3, {"wide": row})
    config = config_from_dict(train_config_dict(spec, Sizes(), tmp_path))
    assert config.method.loss.eps_high == 0.3 and config.method.allocation.allocator == "waterfill"
    assert config.run.seed == 3 and config.optim.mini_batch_prompts == Sizes().mini_batch_prompts
    budget = config_from_dict(train_config_dict(row_spec("budget", "grpo@16", 0), Sizes(), tmp_path))
    assert budget.budget == Sizes().prompts_per_step * 16 and budget.method.allocation.n_max == 32


def test_sampler_rows_get_the_same_generated_budget(tmp_path):
    from dynamo_rl.run.config import config_from_dict
    from experiments.study_plan import Sizes, row_spec
    from experiments.study_runs import generated_rollouts, train_config_dict

    config = config_from_dict(train_config_dict(row_spec("main", "dapo", 0), Sizes(), tmp_path))
    assert config.rollout.sampler == "dapo" and config.method_name == "grpo"
    assert config.rollout.sampler_budget == Sizes().budget_per_step
    assert generated_rollouts({"alloc/budget": 70, "alloc/num_rollouts": [8, 8]}) == 70  # discarded ones count
    assert generated_rollouts({"alloc/num_rollouts": [8, 4]}) == 12


def test_paper_regime_has_several_off_policy_updates():
    from experiments.study_plan import Sizes

    sizes = Sizes()
    assert sizes.updates_per_batch >= 4
    assert sizes.prompts_per_step % sizes.mini_batch_prompts == 0


def _fake_result(row: str, seed: int, pass1: float, group: str = "main") -> dict:
    levels = {f"L{k}": {"pass@1": pass1, "pass@4": pass1 + 0.1, "num_problems": 4} for k in range(1, 3)}
    curve = [{"step": s, "rollouts": 100 * s, "curve/heldout": 0.2 + pass1 * s / 4, "actor/grad_norm": 1.0,
              "actor/entropy": 0.2, "loss/clipfrac": 0.01, "groups/all_correct_frac": 0.1,
              "groups/all_wrong_frac": 0.2} for s in range(5)]
    return {"spec": {"group": group, "row": row, "seed": seed}, "final": {"pass@1": pass1, "pass@4": pass1 + 0.1,
            "levels": levels}, "initial": {"pass@1": 0.2, "levels": levels} if row == "grpo" else None,
            "curve": curve, "total_rollouts": 400, "seconds": {"total": 1.0}, "model_sha256": "x"}


def test_report_on_synthetic_results(tmp_path):
    from experiments.study_report import markdown, summarize, write_report
    from experiments.study_runs import write_json_atomic

    offsets = [0.01, -0.005, 0.02, 0.0]
    for seed, off in enumerate(offsets):
        for row, value in (("grpo", 0.30 + off), ("dynamo", 0.305 + off + 0.002 * seed), ("no_dra", 0.3 + off)):
            write_json_atomic(tmp_path / "results" / "main" / row / f"seed{seed}.json", _fake_result(row, seed, value))
    from experiments.study_report import load_results

    summary = summarize(load_results(tmp_path))
    dyn = summary["main"]["rows"]["dynamo"]["vs_grpo"]
    assert dyn["mean"] == pytest.approx(0.005 + 0.002 * 1.5) and dyn["n"] == 4
    text = markdown(summary)
    assert "MDE" in text or "p = " in text
    assert "Table 2" in text and "warm-start" in text
    paths = write_report(tmp_path, tmp_path / "plots")
    assert (tmp_path / "plots" / "paired_deltas.png").exists() and len(paths) >= 5


@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path):
    """What CI runs: ``python experiments/study.py --quick --output <tmp>`` (a few minutes on 2 cores)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(repo / "experiments" / "study.py"), "--quick", "--output",
                           str(tmp_path / "q")], cwd=repo, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "q" / "summary.md").exists()
    assert (tmp_path / "q" / "results" / "variance" / "grpo" / "seed0.json").exists()
    again = subprocess.run([sys.executable, str(repo / "experiments" / "study.py"), "--quick", "--output",
                            str(tmp_path / "q"), "--no-report"], cwd=repo, capture_output=True, text=True, timeout=300)
    assert "0 to do" in again.stdout  # resumes: finished units are kept


def test_split_curves_weights_levels_by_problem_count():
    from experiments.study_runs import _split_curves

    record = {"eval/level/heldout-L1/acc": 1.0, "eval/level/heldout-L2/acc": 0.25, "eval/level/train-L1/acc": 0.5}
    counts = {"heldout-L1": 1, "heldout-L2": 3, "train-L1": 8}
    out = _split_curves(record, counts)
    assert out["curve/heldout"] == pytest.approx((1.0 * 1 + 0.25 * 3) / 4)
    assert out["curve/train"] == pytest.approx(0.5)
    assert out["curve/heldout/L2"] == 0.25
