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


def test_full_plan_meets_the_seed_requirements():
    from collections import Counter

    from dynamo_rl.presets import METHODS, PRESETS
    from experiments.study_plan import BASELINE_METHODS, MAIN_METHODS, build_plan

    plan = build_plan(quick=False)
    seeds = Counter((s.group, s.row) for s in plan)
    assert all(seeds[("main", row)] >= 5 for row in MAIN_METHODS)
    assert all(seeds[("main", row)] >= 3 for row in BASELINE_METHODS)
    assert seeds[("family2", "grpo")] >= 3 and seeds[("family2", "dynamo")] >= 3
    assert len({row for group, row in seeds if group == "alpha"}) >= 4
    assert all(s.method in METHODS and s.preset in PRESETS for s in plan)
    assert len({s.run_id for s in plan}) == len(plan)
    # seed-major order: an interrupted study has every row's first seeds before anyone's later seeds
    assert [s.seed for s in plan] == sorted(s.seed for s in plan)


def test_split_curves_weights_levels_by_problem_count():
    from experiments.study_runs import _split_curves

    record = {"eval/level/heldout-L1/acc": 1.0, "eval/level/heldout-L2/acc": 0.25, "eval/level/train-L1/acc": 0.5}
    counts = {"heldout-L1": 1, "heldout-L2": 3, "train-L1": 8}
    out = _split_curves(record, counts)
    assert out["curve/heldout"] == pytest.approx((1.0 * 1 + 0.25 * 3) / 4)
    assert out["curve/train"] == pytest.approx(0.5)
    assert out["curve/heldout/L2"] == 0.25
