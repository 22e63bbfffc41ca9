"""Per-token policy losses: loop references, gradcheck, Clip-Cov / KL-Cov selection counts (spec §10 item 8)."""

from __future__ import annotations

import math

import pytest
import torch

from dynamo_rl.core.losses import POLICY_LOSSES, LossInputs, compute_policy_loss, token_covariance


def _random_inputs(B=6, T=9, seed=0, dtype=torch.float64, spread=0.5):
    gen = torch.Generator().manual_seed(seed)
    logprobs = -torch.rand(B, T, generator=gen, dtype=dtype) * 3
    old = logprobs + spread * torch.randn(B, T, generator=gen, dtype=dtype)
    adv = torch.randn(B, 1, generator=gen, dtype=dtype).expand(B, T).clone()
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    return logprobs, old, adv, mask


def _ref_ppo_token(lp, old, a, eps_low, eps_high, c):
    r = math.exp(max(min(lp - old, 20.0), -20.0))
    loss = max(-a * r, -a * min(max(r, 1 - eps_low), 1 + eps_high))
    if c is not None and a < 0:
        loss = min(loss, -c * a)
    return loss


@pytest.mark.parametrize("eps_low, eps_high, c", [(0.2, 0.2, 10.0), (0.2, 0.28, 3.0), (0.1, 0.3, None)])
def test_ppo_clip_matches_loop_reference(eps_low, eps_high, c):
    lp, old, adv, mask = _random_inputs(spread=1.5)
    out = compute_policy_loss("ppo_clip", LossInputs(lp, old, adv, mask), eps_low=eps_low, eps_high=eps_high,
                              clip_ratio_c=c)
    B, T = lp.shape
    for i in range(B):
        for t in range(T):
            expected = _ref_ppo_token(float(lp[i, t]), float(old[i, t]), float(adv[i, t]), eps_low, eps_high, c)
            assert float(out.loss[i, t]) == pytest.approx(expected if mask[i, t] else 0.0, abs=1e-12)
    assert out.mask.dtype == torch.bool and torch.equal(out.mask, mask)


def test_ppo_clip_metrics_hand_worked():
    # Five valid tokens plus one pad: r = 2 (A>0: high clip), r = 0.5 (A<0: low clip), r = 1, r = 20 (A<0: dual), pad.
    r = torch.tensor([[2.0, 0.5, 1.0, 20.0, 1.0, 1.0]], dtype=torch.float64)
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0, 0.0, 5.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, True, True, False]])
    old = torch.zeros_like(r) - 1.0
    out = compute_policy_loss("ppo_clip", LossInputs(old + r.log(), old, adv, mask), eps_low=0.2, eps_high=0.28,
                              clip_ratio_c=10.0)
    expected = torch.tensor([[-1.28, 0.8, -1.0, 10.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(out.loss, expected)
    m = out.metrics
    assert float(m["clipfrac_high"]) == pytest.approx(1 / 5)
    assert float(m["clipfrac_low"]) == pytest.approx(1 / 5)
    assert float(m["dual_clipfrac"]) == pytest.approx(1 / 5)
    assert float(m["clipfrac"]) == pytest.approx(2 / 5)  # token 4: −A·clip = 1.28 < −A·r = 20, not "clipped"
    assert float(m["ratio_mean"]) == pytest.approx((2 + 0.5 + 1 + 20 + 1) / 5)
    assert float(m["approx_kl"]) == pytest.approx(-sum(math.log(x) for x in (2, 0.5, 1, 20, 1)) / 5)
    assert all(v.dim() == 0 and not v.requires_grad for v in m.values())


def test_ppo_clip_gradcheck_float64():
    lp, old, adv, mask = _random_inputs(B=3, T=4, spread=0.3, seed=3)
    lp = lp.clone().requires_grad_(True)

    def fn(x):
        return compute_policy_loss("ppo_clip", LossInputs(x, old, adv, mask), eps_low=0.2, eps_high=0.28,
                                   clip_ratio_c=3.0).loss

    assert torch.autograd.gradcheck(fn, (lp,), eps=1e-6, atol=1e-6)


def test_ppo_clip_on_policy_gradient_is_reinforce():
    lp, _, adv, mask = _random_inputs(seed=5)
    lp = lp.clone().requires_grad_(True)
    out = compute_policy_loss("ppo_clip", LossInputs(lp, lp.detach(), adv, mask), eps_low=0.2, eps_high=0.2)
    out.loss.sum().backward()
    torch.testing.assert_close(lp.grad, torch.where(mask, -adv, torch.zeros_like(adv)))


def test_clipped_tokens_get_no_gradient():
    lp = torch.tensor([[math.log(2.0), math.log(0.5)]], dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    out = compute_policy_loss("ppo_clip", LossInputs(lp, torch.zeros_like(lp), adv, torch.ones_like(adv).bool()))
    out.loss.sum().backward()
    torch.testing.assert_close(lp.grad, torch.zeros_like(lp))


def _cov_inputs(N=6000, seed=0):
    """One long row of N valid tokens whose covariances span (1, 5) for many tokens."""
    gen = torch.Generator().manual_seed(seed)
    lp = -torch.rand(1, N, generator=gen, dtype=torch.float64) * 8
    adv = torch.randn(1, N, generator=gen, dtype=torch.float64) * 3
    return lp, lp.clone(), adv, torch.ones(1, N, dtype=torch.bool)


@pytest.mark.parametrize("N", [6000, 12345, 100])
def test_clip_cov_zeroes_expected_count_within_bounds(N):
    lp, old, adv, mask = _cov_inputs(N)
    lp = lp.clone().requires_grad_(True)
    inputs = LossInputs(lp, old, adv, mask)
    out = compute_policy_loss("clip_cov", inputs, eps_low=0.2, eps_high=0.2, clip_cov_ratio=2e-4,
                              generator=torch.Generator().manual_seed(1))
    out.loss.sum().backward()
    zeroed = (lp.grad == 0) & mask
    expected = max(math.floor(2e-4 * N), 1)
    assert int(zeroed.sum()) == expected
    cov = token_covariance(lp, adv, mask)
    assert bool(((cov[zeroed] > 1) & (cov[zeroed] < 5)).all())
    assert float(out.metrics["clip_cov_frac"]) == pytest.approx(expected / N)
    assert bool((out.loss[zeroed] == 0).all())
    # On policy and unclipped, every other token keeps the plain REINFORCE gradient −A.
    torch.testing.assert_close(lp.grad[~zeroed], -adv[~zeroed])


def test_clip_cov_is_deterministic_with_generator_and_skips_ppo_clipped():
    lp, old, adv, mask = _cov_inputs(20000, seed=2)
    old = old + 0.3 * torch.randn(old.shape, generator=torch.Generator().manual_seed(9), dtype=old.dtype)
    inputs = LossInputs(lp, old, adv, mask)
    runs = [compute_policy_loss("clip_cov", inputs, eps_low=0.2, eps_high=0.2,
                                generator=torch.Generator().manual_seed(s)).loss for s in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
    ppo = compute_policy_loss("ppo_clip", inputs, eps_low=0.2, eps_high=0.2, clip_ratio_c=None).loss
    zeroed = (runs[0] == 0) & (ppo != 0)
    assert int(zeroed.sum()) == 4  # ⌊2e-4 · 20000⌋
    r = (lp - old).exp()
    ppo_clipped = ((adv > 0) & (r > 1.2)) | ((adv < 0) & (r < 0.8))
    assert not bool((zeroed & ppo_clipped).any())


def test_clip_cov_no_candidates_zeroes_nothing():
    lp, old, adv, mask = _random_inputs(seed=1)
    out = compute_policy_loss("clip_cov", LossInputs(lp, lp, adv * 1e-3, mask), clip_cov_lb=1.0, clip_cov_ub=5.0)
    assert float(out.metrics["clip_cov_frac"]) == 0.0


def test_kl_cov_penalises_top_signed_covariance():
    N = 5000
    lp, _, adv, mask = _cov_inputs(N, seed=4)
    old = lp + 0.1 * torch.randn(lp.shape, generator=torch.Generator().manual_seed(3), dtype=lp.dtype)
    inputs = LossInputs(lp, old, adv, mask)
    out = compute_policy_loss("kl_cov", inputs, kl_cov_ratio=2e-3, kl_cov_coef=1.0)
    base = -adv * (lp - old).exp()
    penalised = (out.loss - base).abs() > 1e-12
    k = math.floor(2e-3 * N)
    assert int(penalised.sum()) == k
    # Loop reference: covariances with means over valid tokens, top-k by signed value.
    lpl, advl = lp.flatten().tolist(), adv.flatten().tolist()
    mlp, madv = sum(lpl) / N, sum(advl) / N
    cov = [(x - mlp) * (a - madv) for x, a in zip(lpl, advl)]
    top = sorted(range(N), key=lambda i: -cov[i])[:k]
    assert set(torch.nonzero(penalised.flatten()).flatten().tolist()) == set(top)
    torch.testing.assert_close(out.loss[penalised], base[penalised] + (lp - old).abs()[penalised])
    assert float(out.metrics["kl_cov_frac"]) == pytest.approx(k / N)
    # Largest *signed*, not absolute, covariance: the most negative covariance is never penalised.
    assert min(range(N), key=lambda i: cov[i]) not in top


def test_kl_cov_has_no_clipping_and_respects_mask():
    lp, old, adv, mask = _random_inputs(spread=2.0, seed=6)
    out = compute_policy_loss("kl_cov", LossInputs(lp, old, adv, mask), kl_cov_ratio=1e-6, kl_cov_coef=0.0)
    torch.testing.assert_close(out.loss, torch.where(mask, -adv * (lp - old).exp(), torch.zeros_like(lp)))
    assert float(out.metrics["kl_cov_frac"]) == pytest.approx(1 / int(mask.sum()))  # max(⌊kN⌋, 1) = 1


def test_padding_never_leaks():
    lp, old, adv, mask = _random_inputs(seed=8)
    lp = lp.masked_fill(~mask, float("nan"))
    old = old.masked_fill(~mask, float("inf"))
    lp.requires_grad_(True)
    for name in POLICY_LOSSES:
        lp.grad = None
        out = compute_policy_loss(name, LossInputs(lp, old, adv, mask))
        assert bool(torch.isfinite(out.loss).all()), name
        out.loss.sum().backward()
        assert bool(torch.isfinite(lp.grad).all()) and bool((lp.grad[~mask] == 0).all()), name


def test_bad_inputs():
    lp, old, adv, mask = _random_inputs()
    with pytest.raises(ValueError, match="advantages shape"):
        LossInputs(lp, old, adv[:, :3], mask)
    with pytest.raises(ValueError, match=r"logprobs must be \(B, T\)"):
        LossInputs(lp.flatten(), old.flatten(), adv.flatten(), mask.flatten())
    with pytest.raises(KeyError, match="valid names: clip_cov, kl_cov, ppo_clip"):
        compute_policy_loss("vanilla", LossInputs(lp, old, adv, mask))
    with pytest.raises(ValueError, match="clip_ratio_c"):
        compute_policy_loss("ppo_clip", LossInputs(lp, old, adv, mask), clip_ratio_c=0.5)
    with pytest.raises(ValueError, match="eps_low"):
        compute_policy_loss("ppo_clip", LossInputs(lp, old, adv, mask), eps_low=-0.1)
    with pytest.raises(ValueError, match="clip_cov_ratio"):
        compute_policy_loss("clip_cov", LossInputs(lp, old, adv, mask), clip_cov_ratio=0.0)
    with pytest.raises(ValueError, match="kl_cov_ratio"):
        compute_policy_loss("kl_cov", LossInputs(lp, old, adv, mask), kl_cov_ratio=0.0)


def test_covariance_ignores_padding_values():
    lp, _, adv, mask = _random_inputs(seed=11)
    clean = token_covariance(lp, adv, mask)
    dirty = token_covariance(lp.masked_fill(~mask, float("nan")), adv.masked_fill(~mask, 1e30), mask)
    torch.testing.assert_close(dirty[mask], clean[mask])
    assert bool((dirty[~mask] == float("-inf")).all())
