"""Presets and methods: every combination builds; presets differ where documented; every name is documented."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dynamo_rl.core.advantages import ADVANTAGES
from dynamo_rl.core.aggregation import AGGREGATIONS
from dynamo_rl.core.losses import POLICY_LOSSES
from dynamo_rl.method_config import MethodConfig
from dynamo_rl.presets import ABLATIONS, BASELINES, METHODS, PRESETS, build_method_config

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_and_preset_builds_with_registered_names(method, preset):
    cfg = build_method_config(method, preset)
    assert isinstance(cfg, MethodConfig)
    assert cfg.loss.advantage_estimator in ADVANTAGES
    assert cfg.loss.policy_loss in POLICY_LOSSES
    assert cfg.loss.loss_agg_mode in AGGREGATIONS


def test_official_preset_is_the_dataclass_defaults():
    assert build_method_config("dynamo", "official") == MethodConfig()


def test_presets_differ_where_documented():
    paper, official, theory = (build_method_config("dynamo", p) for p in ("paper", "official", "theory"))
    # Hidden ε_high = 0.28 in the authors' code vs Table 3's 0.2.
    assert official.loss.eps_high == 0.28 and paper.loss.eps_high == 0.2 and theory.loss.eps_high == 0.2
    assert {official.loss.eps_low, paper.loss.eps_low, theory.loss.eps_low} == {0.2}
    # A4 allocator, A1 proxy power, A3 heuristics, A5 infeasible policy.
    assert (official.allocation.allocator, paper.allocation.allocator) == ("official", "waterfill")
    assert (paper.allocation.proxy_power, theory.allocation.proxy_power) == (1.0, 0.5)
    assert official.allocation.weight_floor == 0.01 and paper.allocation.weight_floor is None
    assert official.allocation.infeasible == "clamp_budget" and paper.allocation.infeasible == "scale_min"
    # Modulation parameterisation, A7 entropy-change mode, A6 scope.
    assert (official.modulation.effective_mu_max, official.modulation.effective_lambda_min) == (1.2, 0.6)
    assert paper.modulation.effective_mu_max == pytest.approx(1.4)
    assert paper.modulation.effective_lambda_min == pytest.approx(0.6)
    assert (official.modulation.tau, paper.modulation.tau) == (0.99, 0.9)
    assert [c.modulation.entropy_change_mode for c in (official, paper, theory)] == ["seq_mean_baseline", "pi2",
                                                                                    "exact"]
    assert (official.modulation.norm_scope, paper.modulation.norm_scope) == ("micro", "mini")


def _diff(a: MethodConfig, b: MethodConfig) -> set[str]:
    out = set()
    for section in ("allocation", "modulation", "loss"):
        x, y = getattr(a, section), getattr(b, section)
        out |= {f"{section}.{f.name}" for f in dataclasses.fields(x) if getattr(x, f.name) != getattr(y, f.name)}
    return out


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_baselines_differ_from_grpo_only_in_their_own_options(preset):
    grpo = build_method_config("grpo", preset)
    assert grpo.allocation.allocator == "uniform" and not grpo.modulation.enabled
    assert grpo.loss.eps_low == grpo.loss.eps_high == 0.2
    expected = {
        "clip_higher": {"loss.eps_high"},
        "entropy_loss": {"loss.entropy_coeff"},
        "fork_tokens": {"loss.eps_high", "loss.fork_top_ratio"},
        "entropy_adv": {"loss.entropy_adv_alpha"},
        "clip_cov": {"loss.policy_loss", "loss.eps_low", "loss.eps_high"},
        "kl_cov": {"loss.policy_loss"},
        "w_reinforce": {"loss.advantage_estimator"},
        "dr_grpo": {"loss.advantage_estimator", "loss.loss_agg_mode"},
    }
    for method, fields in expected.items():
        diff = _diff(grpo, build_method_config(method, preset))
        if method == "kl_cov":  # KL-Cov has no ratio clipping, so the clip ranges are unused
            diff -= {"loss.eps_low", "loss.eps_high"}
        assert diff == fields, method
    dynamo = build_method_config("dynamo", preset)
    assert dynamo.allocation.allocator != "uniform" and dynamo.modulation.enabled
    assert not build_method_config("no_dra", preset).allocation.allocator == dynamo.allocation.allocator
    assert not build_method_config("no_gc", preset).modulation.gradient_compensation
    assert not build_method_config("no_ums", preset).modulation.stabilization
    assert not build_method_config("no_gc_ums", preset).modulation.enabled


def test_baselines_and_ablations_are_methods():
    assert set(BASELINES) <= set(METHODS) and set(ABLATIONS) <= set(METHODS)
    assert len(BASELINES) == 8  # the paper's Table 1


def test_unknown_names_raise():
    with pytest.raises(KeyError, match="valid presets"):
        build_method_config("dynamo", "nope")
    with pytest.raises(KeyError, match="valid methods"):
        build_method_config("nope", "official")


def test_every_method_and_preset_name_is_documented():
    text = (DOCS / "implementation_details.md").read_text() + (DOCS / "paper_map.md").read_text()
    missing = [name for name in (*METHODS, *PRESETS) if f"`{name}`" not in text]
    assert not missing, f"not documented in docs/: {missing}"
