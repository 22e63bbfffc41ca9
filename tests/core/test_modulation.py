"""Tests for dynamo_rl.core.modulation (GC Eq 8-9, ξ Eq 24, ΔĤ Eq 10/27-29, UMS Eq 11-13, Ã Eq 14; spec §10.4-7)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_rl.core.modulation import (
    Modulation,
    clip_indicator,
    entropy_change,
    entropy_minmax,
    gradient_compensation,
    instability_stats,
    max_instability,
    modulate_advantages,
    stabilization,
)
from dynamo_rl.core.token_stats import token_stats
from dynamo_rl.method_config import ModulationConfig

EPS_LOW, EPS_HIGH = 0.2, 0.28


# ---------------------------------------------------------------- loop-based oracles (straight from the spec, §4)
def _ref_gc(adv, ent, mask, mu_max):
    vals = [float(ent[b, t]) for b in range(adv.shape[0]) for t in range(adv.shape[1]) if mask[b, t]]
    out = torch.ones_like(adv, dtype=torch.float64)
    if not vals or max(vals) - min(vals) < 1e-8:
        return out
    lo, hi = min(vals), max(vals)
    for b in range(adv.shape[0]):
        for t in range(adv.shape[1]):
            if mask[b, t] and adv[b, t] > 0:
                out[b, t] = 1 + (mu_max - 1) * (hi - float(ent[b, t])) / (hi - lo)
    return out


def _ref_indicator(r, a):
    return 1.0 if (a > 0 and r <= 1 + EPS_HIGH) or (a < 0 and r >= 1 - EPS_LOW) else 0.0


def _ref_change(adv, ratio, logp, ent, mask, mode, centered=None):
    out = torch.zeros_like(adv, dtype=torch.float64)
    for b in range(adv.shape[0]):
        terms = [math.exp(float(logp[b, t])) * (float(logp[b, t]) + float(ent[b, t]))
                 for t in range(adv.shape[1]) if mask[b, t]]
        seq_mean = sum(terms) / len(terms) if terms else 0.0
        for t in range(adv.shape[1]):
            if not mask[b, t]:
                continue
            a, r = float(adv[b, t]), float(ratio[b, t])
            xi = _ref_indicator(r, a) * r * a
            pi, lam = math.exp(float(logp[b, t])), float(logp[b, t]) + float(ent[b, t])
            if mode == "pi2":
                term = pi * pi * lam
            elif mode == "exact":
                term = pi * lam - float(centered[b, t])
            else:
                term = pi * lam - seq_mean
            out[b, t] = -xi * term
    return out


def _ref_ums(inst, mask, lambda_min, k, tau, min_tokens=2):
    vals = [float(inst[b, t]) for b in range(inst.shape[0]) for t in range(inst.shape[1]) if mask[b, t]]
    top = max(vals) if vals else 0.0
    nonzero = sum(v > 0 for v in vals)
    out = torch.ones_like(inst, dtype=torch.float64)
    if nonzero < min_tokens:
        return out
    for b in range(inst.shape[0]):
        for t in range(inst.shape[1]):
            if mask[b, t]:
                x = float(inst[b, t]) / (top + 1e-8)
                out[b, t] = lambda_min + (1 - lambda_min) / (1 + math.exp(k * (x - tau)))
    return out


def _batch(seed=0, rows=4, length=7, vocab=23):
    gen = torch.Generator().manual_seed(seed)
    logits = 2.5 * torch.randn(rows, length, vocab, generator=gen, dtype=torch.float64)
    targets = torch.randint(0, vocab, (rows, length), generator=gen)
    stats = token_stats(logits, targets, with_centered=True)
    mask = torch.ones(rows, length, dtype=torch.bool)
    mask[1, 4:] = False
    mask[3, 2:] = False
    adv = torch.tensor([1.2, -0.7, 0.0, 0.5], dtype=torch.float64)[:rows, None].expand(rows, length).clone()
    old = stats.logprobs.detach() + 0.3 * torch.randn(rows, length, generator=gen, dtype=torch.float64)
    return adv, mask, stats, old


# ---------------------------------------------------------------- Gradient Compensation (spec §10.4)
def test_gc_matches_loop_oracle_and_spec_cases() -> None:
    adv, mask, stats, _ = _batch()
    ent = stats.entropy.clone()
    ent[1, 5] = 100.0  # padding: must never set H_max
    ent[3, 6] = -5.0  # padding: must never set H_min
    f = gradient_compensation(adv, ent, mask, mu_max=1.4)
    torch.testing.assert_close(f, _ref_gc(adv, ent, mask, 1.4))
    assert torch.all(f[adv <= 0] == 1) and torch.all(f[~mask] == 1)
    h_min, h_max = entropy_minmax(ent, mask)
    assert float(h_max) < 100 and float(h_min) > -5
    ent2 = ent.clone()
    ent2[0, 0], ent2[0, 1] = float(h_min) - 1, float(h_max) + 1  # put the extremes on A>0 tokens
    f2 = gradient_compensation(adv, ent2, mask, mu_max=1.4)
    assert math.isclose(float(f2[0, 0]), 1.4, rel_tol=1e-12) and math.isclose(float(f2[0, 1]), 1.0, rel_tol=1e-12)


def test_gc_constant_entropy_and_empty_mask_give_one() -> None:
    adv = torch.ones(2, 3)
    assert torch.all(gradient_compensation(adv, torch.full((2, 3), 0.7), torch.ones(2, 3), mu_max=1.4) == 1)
    assert torch.all(gradient_compensation(adv, torch.rand(2, 3), torch.zeros(2, 3), mu_max=1.4) == 1)
    one = torch.zeros(2, 3)
    one[0, 0] = 1
    assert torch.all(gradient_compensation(adv, torch.rand(2, 3), one, mu_max=1.4) == 1)


def test_gc_external_range_is_used_and_clamped() -> None:
    adv = torch.ones(1, 3)
    ent = torch.tensor([[0.0, 1.0, 3.0]])
    f = gradient_compensation(adv, ent, torch.ones(1, 3), mu_max=1.2, entropy_range=(0.0, 2.0))
    torch.testing.assert_close(f, torch.tensor([[1.2, 1.1, 1.0]]))


# ---------------------------------------------------------------- clip indicator and ΔĤ (spec §10.5)
def test_clip_indicator_cases() -> None:
    ratio = torch.tensor([1.5, 1.28, 1.0, 0.7, 0.8, 0.5, 1.0, 1.5])
    adv = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 0.0, -2.0])
    got = clip_indicator(ratio, adv, eps_low=EPS_LOW, eps_high=EPS_HIGH)
    expected = torch.tensor([_ref_indicator(float(r), float(a)) for r, a in zip(ratio, adv)])
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]))


@pytest.mark.parametrize("mode", ["seq_mean_baseline", "exact", "pi2"])
def test_entropy_change_matches_loop_oracle(mode: str) -> None:
    adv, mask, stats, old = _batch(seed=3)
    ratio = (stats.logprobs.detach() - old).exp()
    got = entropy_change(adv, ratio, stats.logprobs.detach(), stats.entropy, mask, eps_low=EPS_LOW,
                         eps_high=EPS_HIGH, mode=mode, sum_sq_probs_centered=stats.sum_sq_probs_centered)
    ref = _ref_change(adv, ratio, stats.logprobs.detach(), stats.entropy, mask, mode, stats.sum_sq_probs_centered)
    torch.testing.assert_close(got, ref)
    assert torch.all(got[~mask] == 0) and torch.all(got[adv == 0] == 0)
    assert float(got.abs().max()) > 0


def test_exact_mode_predicts_tabular_entropy_change_sign_convention() -> None:
    """exact-mode ΔĤ·η matches the true entropy change of a tabular softmax after one surrogate ascent step."""
    gen = torch.Generator().manual_seed(11)
    eta = 1e-5
    rel = []
    for _ in range(60):
        z = (2.0 * torch.randn(1, 1, 15, generator=gen, dtype=torch.float64)).requires_grad_(True)
        y = torch.randint(0, 15, (1, 1), generator=gen)
        adv = torch.randn(1, 1, generator=gen, dtype=torch.float64)
        stats = token_stats(z, y, with_centered=True)
        ratio = torch.ones(1, 1, dtype=torch.float64)
        pred = entropy_change(adv, ratio, stats.logprobs.detach(), stats.entropy, torch.ones(1, 1),
                              eps_low=EPS_LOW, eps_high=EPS_HIGH, mode="exact",
                              sum_sq_probs_centered=stats.sum_sq_probs_centered)
        (grad,) = torch.autograd.grad((stats.logprobs * adv).sum(), z)  # ascent on r·A at r = 1
        new = token_stats((z + eta * grad).detach(), y)
        true = float(new.entropy - stats.entropy)
        rel.append(abs(eta * float(pred) - true) / max(abs(true), 1e-300))
    rel.sort()
    assert rel[len(rel) // 2] < 1e-3


def test_exact_mode_requires_centered_and_bad_mode_raises() -> None:
    adv, mask, stats, _ = _batch()
    with pytest.raises(ValueError, match="sum_sq_probs_centered"):
        entropy_change(adv, torch.ones_like(adv), stats.logprobs.detach(), stats.entropy, mask, eps_low=0.2,
                       eps_high=0.2, mode="exact")
    with pytest.raises(ValueError, match="entropy_change_mode"):
        entropy_change(adv, torch.ones_like(adv), stats.logprobs.detach(), stats.entropy, mask, eps_low=0.2,
                       eps_high=0.2, mode="bogus")


# ---------------------------------------------------------------- UMS (spec §10.6)
def test_ums_matches_oracle_and_spec_values() -> None:
    gen = torch.Generator().manual_seed(5)
    inst = torch.rand(3, 6, generator=gen, dtype=torch.float64)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[2, 3:] = False
    inst[2, 5] = 50.0  # padding must not set the max
    g = stabilization(inst, mask, lambda_min=0.6, k=50.0, tau=0.9)
    torch.testing.assert_close(g, _ref_ums(inst, mask, 0.6, 50.0, 0.9))
    assert torch.all(g[~mask] == 1) and float(g[mask].min()) < 0.61
    # g(τ) = (1 + λ_min)/2 and g(1) ≈ λ_min for large k
    tau = 0.5
    two = torch.tensor([[tau, 1.0]], dtype=torch.float64)
    g2 = stabilization(two, torch.ones(1, 2), lambda_min=0.6, k=200.0, tau=tau)
    assert math.isclose(float(g2[0, 0]), 0.8, rel_tol=1e-6)
    assert abs(float(g2[0, 1]) - 0.6) < 1e-6


def test_ums_all_zero_and_lone_token_guard() -> None:
    mask = torch.ones(2, 4)
    assert torch.all(stabilization(torch.zeros(2, 4), mask, lambda_min=0.6, k=50.0, tau=0.9) == 1)
    lone = torch.zeros(2, 4)
    lone[1, 2] = 3.0
    assert torch.all(stabilization(lone, mask, lambda_min=0.6, k=50.0, tau=0.9, min_tokens=2) == 1)
    g = stabilization(lone, mask, lambda_min=0.6, k=50.0, tau=0.9, min_tokens=1)
    assert math.isclose(float(g[1, 2]), 0.6 + 0.4 / (1 + math.exp(50 * 0.1)), rel_tol=1e-6)  # g(1) ≈ 0.603 (spec)


def test_ums_external_scope() -> None:
    inst = torch.tensor([[0.5, 1.0]])
    g_local = stabilization(inst, torch.ones(1, 2), lambda_min=0.6, k=50.0, tau=0.9)
    g_wide = stabilization(inst, torch.ones(1, 2), lambda_min=0.6, k=50.0, tau=0.9, instability_max=10.0,
                           instability_count=5)
    assert float(g_local[0, 1]) < 0.61 and torch.all(g_wide > 0.99)
    mx, count = instability_stats(torch.tensor([[0.0, 2.0, 9.0]]), torch.tensor([[1, 1, 0]]))
    assert float(mx) == 2.0 and int(count) == 1
    assert float(max_instability(torch.tensor([[0.0, 2.0, 9.0]]), torch.tensor([[1, 1, 1]]))) == 9.0


# ---------------------------------------------------------------- combined Ã (spec §10.7), through ModulationConfig
def _modulate(config: ModulationConfig, adv, mask, stats, old, **extra) -> Modulation:
    return modulate_advantages(adv, mask, logprobs=stats.logprobs.detach(), old_logprobs=old, entropy=stats.entropy,
                               eps_low=EPS_LOW, eps_high=EPS_HIGH, sum_sq_probs_centered=stats.sum_sq_probs_centered,
                               **config.core_kwargs(), **extra)


@pytest.mark.parametrize("config", [
    ModulationConfig(),  # separate knobs (run script): mu_max 1.2, lambda_min 0.6, tau 0.99
    ModulationConfig(alpha=0.4, tau=0.9, entropy_change_mode="pi2"),  # unified α: mu_max 1.4, lambda_min 0.6
    ModulationConfig(alpha=0.3, tau=0.9, entropy_change_mode="exact"),
], ids=["separate", "unified-pi2", "unified-exact"])
def test_modulate_matches_product_of_oracles(config: ModulationConfig) -> None:
    adv, mask, stats, old = _batch(seed=9)
    out = _modulate(config, adv, mask, stats, old)
    kw = config.core_kwargs()
    ratio = (stats.logprobs.detach() - old).exp()
    f_ref = _ref_gc(adv, stats.entropy, mask, kw["mu_max"])
    inst_ref = _ref_change(adv, ratio, stats.logprobs.detach(), stats.entropy, mask, kw["entropy_change_mode"],
                           stats.sum_sq_probs_centered).abs()
    g_ref = _ref_ums(inst_ref, mask, kw["lambda_min"], kw["k"], kw["tau"])
    torch.testing.assert_close(out.compensation, f_ref)
    torch.testing.assert_close(out.instability, inst_ref)
    torch.testing.assert_close(out.stabilization, g_ref)
    torch.testing.assert_close(out.advantages, adv * f_ref * g_ref)
    assert torch.equal(torch.sign(out.advantages), torch.sign(adv))
    assert float(out.metrics["mod/compensation_max"]) <= kw["mu_max"] + 1e-12
    assert float(out.metrics["mod/stabilization_min"]) >= kw["lambda_min"] - 1e-12
    assert float(out.metrics["mod/frac_boosted"]) > 0


def test_modulate_switches_and_sequence_advantages() -> None:
    adv, mask, stats, old = _batch(seed=4)
    off = _modulate(ModulationConfig(gradient_compensation=False, stabilization=False), adv, mask, stats, old)
    torch.testing.assert_close(off.advantages, adv)
    seq = modulate_advantages(adv[:, 0], mask, logprobs=stats.logprobs.detach(), old_logprobs=old,
                              entropy=stats.entropy, eps_low=EPS_LOW, eps_high=EPS_HIGH, **ModulationConfig().core_kwargs())
    full = _modulate(ModulationConfig(), adv, mask, stats, old)
    torch.testing.assert_close(seq.advantages, full.advantages)
    no_gc = _modulate(ModulationConfig(gradient_compensation=False), adv, mask, stats, old)
    assert torch.all(no_gc.compensation == 1) and torch.all(no_gc.advantages.abs() <= adv.abs() + 1e-12)


def test_factors_carry_no_gradient() -> None:
    gen = torch.Generator().manual_seed(12)
    logits = torch.randn(3, 5, 11, generator=gen, requires_grad=True)
    targets = torch.randint(0, 11, (3, 5), generator=gen)
    stats = token_stats(logits, targets)
    adv = torch.tensor([1.0, -1.0, 0.5]).requires_grad_(True)
    out = modulate_advantages(adv, torch.ones(3, 5), logprobs=stats.logprobs, old_logprobs=stats.logprobs.detach(),
                              entropy=stats.entropy, eps_low=0.2, eps_high=0.2, **ModulationConfig().core_kwargs())
    for tensor in (out.compensation, out.stabilization, out.instability, *out.metrics.values()):
        assert not tensor.requires_grad
    (grad,) = torch.autograd.grad(out.advantages.sum(), adv)  # only A carries gradient: dÃ/dA = Σ_t f·g
    torch.testing.assert_close(grad, (out.compensation * out.stabilization).sum(1))
    assert logits.grad is None


def test_bad_arguments_raise() -> None:
    adv, mask, stats, old = _batch()
    with pytest.raises(ValueError, match="mask"):
        modulate_advantages(adv, mask[:, :3], logprobs=stats.logprobs, old_logprobs=old, entropy=stats.entropy,
                            eps_low=0.2, eps_high=0.2, **ModulationConfig().core_kwargs())
    with pytest.raises(ValueError, match="old_logprobs"):
        modulate_advantages(adv, mask, logprobs=stats.logprobs, old_logprobs=old[:, :2], entropy=stats.entropy,
                            eps_low=0.2, eps_high=0.2, **ModulationConfig().core_kwargs())
    with pytest.raises(ValueError, match="mu_max"):
        gradient_compensation(adv, stats.entropy, mask, mu_max=0.5)
    with pytest.raises(ValueError, match="lambda_min"):
        stabilization(adv.abs(), mask, lambda_min=0.0, k=50.0, tau=0.9)


# ---------------------------------------------------------------- property tests for the factor bounds
@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 4), length=st.integers(1, 6), seed=st.integers(0, 10_000),
    alpha=st.floats(0.0, 0.9), tau=st.floats(0.0, 1.0), k=st.floats(0.5, 200.0),
    mode=st.sampled_from(["seq_mean_baseline", "exact", "pi2"]),
)
def test_factor_bounds_property(rows, length, seed, alpha, tau, k, mode) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(rows, length, 9, generator=gen, dtype=torch.float64)
    stats = token_stats(logits, torch.randint(0, 9, (rows, length), generator=gen), with_centered=True)
    adv = torch.randn(rows, generator=gen, dtype=torch.float64)
    adv[torch.rand(rows, generator=gen) < 0.2] = 0.0
    mask = torch.rand(rows, length, generator=gen) < 0.8
    old = stats.logprobs + 0.5 * torch.randn(rows, length, generator=gen, dtype=torch.float64)
    config = ModulationConfig(alpha=alpha, tau=tau, k=k, entropy_change_mode=mode)
    out = _modulate(config, adv[:, None].expand(rows, length), mask, stats, old)
    mu, lam = 1 + alpha, 1 - alpha
    assert torch.all(out.compensation >= 1 - 1e-12) and torch.all(out.compensation <= mu + 1e-12)
    assert torch.all(out.stabilization >= lam - 1e-12) and torch.all(out.stabilization <= 1 + 1e-12)
    full = adv[:, None].expand(rows, length)
    assert torch.equal(torch.sign(out.advantages), torch.sign(full))
    neg = full < 0
    assert torch.all(out.advantages[neg].abs() <= full[neg].abs() + 1e-12)  # negatives are only ever damped
    assert torch.all(out.compensation[~mask] == 1) and torch.all(out.stabilization[~mask] == 1)


# ---------------------------------------------------------------- non-finite inputs (beyond the paper)
@pytest.mark.parametrize("field", ["entropy", "logprobs", "old_logprobs", "sum_sq_probs_centered"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_token_is_left_out_and_gets_factor_one(field: str, bad: float) -> None:
    adv, mask, stats, old = _batch(seed=9)
    mask = mask.bool()
    row, col = next((r, c) for r in range(mask.shape[0]) for c in range(mask.shape[1])
                    if mask[r, c] and adv[r, c] > 0)
    inputs = {"entropy": stats.entropy.clone(), "logprobs": stats.logprobs.detach().clone(),
              "old_logprobs": old.clone(), "sum_sq_probs_centered": stats.sum_sq_probs_centered.clone()}
    inputs[field][row, col] = bad
    config = ModulationConfig(alpha=0.3, tau=0.9, entropy_change_mode="exact")
    kwargs = dict(eps_low=EPS_LOW, eps_high=EPS_HIGH, **config.core_kwargs())
    out = modulate_advantages(adv, mask, **inputs, **kwargs)
    without = mask.clone()
    without[row, col] = False
    ref = modulate_advantages(adv, without, logprobs=stats.logprobs.detach(), old_logprobs=old,
                              entropy=stats.entropy, sum_sq_probs_centered=stats.sum_sq_probs_centered, **kwargs)
    assert torch.isfinite(out.advantages).all()
    assert (float(out.compensation[row, col]), float(out.stabilization[row, col])) == (1.0, 1.0)
    assert float(out.instability[row, col]) == 0.0
    assert torch.equal(out.advantages[without], ref.advantages[without])  # the rest exactly as if it were padding
    assert float(out.metrics["mod/nonfinite_tokens"]) == 1.0
    assert float(ref.metrics["mod/nonfinite_tokens"]) == 0.0


def test_nonfinite_entries_outside_the_mask_are_not_counted() -> None:
    adv, mask, stats, old = _batch(seed=9)
    mask = mask.bool()
    entropy = torch.where(mask, stats.entropy, torch.full_like(stats.entropy, float("nan")))
    out = modulate_advantages(adv, mask, logprobs=stats.logprobs.detach(), old_logprobs=old, entropy=entropy,
                              eps_low=EPS_LOW, eps_high=EPS_HIGH, **ModulationConfig().core_kwargs())
    ref = modulate_advantages(adv, mask, logprobs=stats.logprobs.detach(), old_logprobs=old, entropy=stats.entropy,
                              eps_low=EPS_LOW, eps_high=EPS_HIGH, **ModulationConfig().core_kwargs())
    assert torch.equal(out.advantages, ref.advantages)
    assert float(out.metrics["mod/nonfinite_tokens"]) == 0.0


def test_normalisers_skip_nonfinite_values() -> None:
    entropy = torch.tensor([[0.5, float("nan"), 2.0, float("inf")]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    h_min, h_max = entropy_minmax(entropy, mask)
    assert (float(h_min), float(h_max)) == (0.5, 2.0)
    inst = torch.tensor([[0.1, float("nan"), 0.4, float("inf")]])
    inst_max, count = instability_stats(inst, mask)
    assert (float(inst_max), int(count)) == (pytest.approx(0.4), 2)
    g = stabilization(inst, mask, lambda_min=0.5, k=10.0, tau=0.5)
    assert g[0, 1].item() == 1.0 and g[0, 3].item() == 1.0 and torch.isfinite(g).all()
    g_nan_max = stabilization(inst, mask, lambda_min=0.5, k=10.0, tau=0.5, instability_max=float("nan"))
    assert g_nan_max.tolist() == [[1.0, 1.0, 1.0, 1.0]]
    f = gradient_compensation(torch.ones(1, 4), entropy, mask, mu_max=1.5)
    assert f.tolist() == [[1.5, 1.0, 1.0, 1.0]]
