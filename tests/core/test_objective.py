"""compute_objective: every method runs on ragged inputs with finite loss and flowing gradients; REINFORCE limit;
zero advantages give zero gradient; order of shaping → modulation → loss → mask → aggregation."""

from __future__ import annotations

import pytest
import torch

from dynamo_rl.core.advantages import compute_advantages
from dynamo_rl.core.token_stats import TokenStats, token_stats
from dynamo_rl.method_config import MethodConfig
from dynamo_rl.presets import METHODS, PRESETS, build_method_config
from dynamo_rl.trainer.objective import compute_objective

GROUP_IDS = torch.tensor([4, 4, 4, 9, 9, 9, 9, 9, 1, 1, 7, 7, 7, 7])  # ragged groups of 3, 5, 2, 4
B, T, V = len(GROUP_IDS), 10, 17


def _batch(seed: int = 0, off_policy: float = 0.3):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=gen, dtype=torch.float64) * 2
    logits.requires_grad_(True)
    targets = torch.randint(0, V, (B, T), generator=gen)
    lengths = torch.randint(2, T + 1, (B,), generator=gen)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    rewards = (torch.rand(B, generator=gen) < 0.5).to(torch.float64)
    rewards[0], rewards[1] = 1.0, 0.0  # at least one group with signal
    noise = off_policy * torch.randn(B, T, generator=gen, dtype=torch.float64)
    return logits, targets, mask, rewards, noise


def _entropy(logits):
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_with_finite_loss_and_gradients(method, preset):
    cfg = build_method_config(method, preset)
    logits, targets, mask, rewards, noise = _batch(seed=sum(map(ord, method + preset)))
    stats = token_stats(logits, targets, with_centered=True)
    adv = compute_advantages(cfg.loss.advantage_estimator, rewards, GROUP_IDS)
    out = compute_objective(cfg, logprobs=stats.logprobs, old_logprobs=stats.logprobs.detach() + noise,
                            advantages=adv, mask=mask, stats=stats, generator=torch.Generator().manual_seed(0),
                            entropy_for_bonus=_entropy(logits))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0
    assert (logits.grad[~mask] == 0).all(), "padding must get no gradient"
    for name, value in out.metrics.items():
        assert not (isinstance(value, torch.Tensor) and value.requires_grad), name
    assert "pg_loss" in out.metrics and "entropy" in out.metrics
    # Shaping and modulation never flip the sign of an advantage.
    base = adv[:, None].expand(B, T)
    assert torch.equal(torch.sign(out.advantages[mask]), torch.sign(base[mask]))


def _plain_stats(lp: torch.Tensor, seed: int = 0) -> TokenStats:
    gen = torch.Generator().manual_seed(seed)
    ent = torch.rand(lp.shape, generator=gen, dtype=lp.dtype) * 3
    return TokenStats(logprobs=lp, entropy=ent, sum_sq_probs=torch.rand(lp.shape, generator=gen, dtype=lp.dtype),
                      sum_sq_probs_centered=torch.randn(lp.shape, generator=gen, dtype=lp.dtype) * 0.01)


def _leaf_logprobs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return (-torch.rand(B, T, generator=gen, dtype=torch.float64) * 4).requires_grad_(True)


@pytest.mark.parametrize("method", ["grpo", "w_reinforce", "clip_higher", "no_gc_ums"])
def test_on_policy_without_modulation_is_reinforce_token_mean(method):
    cfg = build_method_config(method, "official")
    assert not cfg.modulation.enabled and cfg.loss.loss_agg_mode == "token-mean"
    lp = _leaf_logprobs(1)
    _, _, mask, rewards, _ = _batch(seed=2)
    adv = compute_advantages(cfg.loss.advantage_estimator, rewards, GROUP_IDS)
    out = compute_objective(cfg, logprobs=lp, old_logprobs=lp.detach(), advantages=adv, mask=mask,
                            stats=_plain_stats(lp))
    out.loss.backward()
    expected = torch.where(mask, -adv[:, None].expand(B, T), torch.zeros(B, T, dtype=lp.dtype)) / mask.sum()
    torch.testing.assert_close(lp.grad, expected)


def test_dynamo_on_policy_gradient_uses_modulated_advantages():
    cfg = build_method_config("dynamo", "theory")
    lp = _leaf_logprobs(3)
    _, _, mask, rewards, _ = _batch(seed=4)
    adv = compute_advantages("grpo", rewards, GROUP_IDS)
    out = compute_objective(cfg, logprobs=lp, old_logprobs=lp.detach(), advantages=adv, mask=mask,
                            stats=_plain_stats(lp, 5))
    out.loss.backward()
    expected = torch.where(mask, -out.advantages, torch.zeros_like(lp)) / mask.sum()
    torch.testing.assert_close(lp.grad, expected)
    # GC boosts some positive advantages: the modulated advantages differ from the raw ones.
    assert not torch.allclose(out.advantages[mask], adv[:, None].expand(B, T)[mask])
    assert any(name.startswith("mod/") for name in out.metrics)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_zero_advantages_give_zero_gradient(method):
    cfg = build_method_config(method, "official")
    lp = _leaf_logprobs(6)
    _, _, mask, _, _ = _batch(seed=7)
    bonus_entropy = torch.rand(B, T, dtype=torch.float64, requires_grad=True)  # separate leaf: bonus grads go there
    out = compute_objective(cfg, logprobs=lp, old_logprobs=lp.detach(), advantages=torch.zeros(B, dtype=lp.dtype),
                            mask=mask, stats=_plain_stats(lp), entropy_for_bonus=bonus_entropy)
    out.loss.backward()
    torch.testing.assert_close(lp.grad, torch.zeros_like(lp))


def test_fork_tokens_train_only_selected_tokens_with_selected_count_denominator():
    cfg = build_method_config("fork_tokens", "official")
    lp = _leaf_logprobs(8)
    _, _, mask, rewards, _ = _batch(seed=9)
    adv = compute_advantages("grpo", rewards, GROUP_IDS)
    stats = _plain_stats(lp, 10)
    out = compute_objective(cfg, logprobs=lp, old_logprobs=lp.detach(), advantages=adv, mask=mask, stats=stats)
    out.loss.backward()
    selected = out.loss_mask
    n_sel = int(selected.sum())
    assert n_sel == int(torch.ceil(torch.tensor(0.2 * int(mask.sum()) - 1e-9)))
    expected = torch.where(selected, -adv[:, None].expand(B, T), torch.zeros_like(lp)) / n_sel
    torch.testing.assert_close(lp.grad, expected)
    assert float(stats.entropy[selected].min()) >= float(stats.entropy[mask & ~selected].max())


def test_entropy_adv_shapes_before_the_loss():
    cfg = build_method_config("entropy_adv", "official")
    lp = _leaf_logprobs(11)
    _, _, mask, rewards, _ = _batch(seed=12)
    adv = compute_advantages("grpo", rewards, GROUP_IDS)
    stats = _plain_stats(lp, 13)
    out = compute_objective(cfg, logprobs=lp, old_logprobs=lp.detach(), advantages=adv, mask=mask, stats=stats)
    a = adv[:, None].expand(B, T)
    torch.testing.assert_close(out.advantages, a + torch.minimum(0.4 * stats.entropy, a.abs() / 2.0))


def test_entropy_bonus_requires_differentiable_entropy_and_adds_its_gradient():
    cfg = build_method_config("entropy_loss", "official")
    lp = _leaf_logprobs(14)
    _, _, mask, rewards, _ = _batch(seed=15)
    adv = compute_advantages("grpo", rewards, GROUP_IDS)
    with pytest.raises(ValueError, match="entropy_for_bonus"):
        compute_objective(cfg, logprobs=lp, old_logprobs=lp.detach(), advantages=adv, mask=mask,
                          stats=_plain_stats(lp))
    ent = torch.rand(B, T, dtype=torch.float64, requires_grad=True)
    out = compute_objective(cfg, logprobs=lp, old_logprobs=lp.detach(), advantages=adv, mask=mask,
                            stats=_plain_stats(lp), entropy_for_bonus=ent)
    out.loss.backward()
    torch.testing.assert_close(ent.grad, torch.where(mask, -0.001 / mask.sum(), 0.0).to(ent.dtype))


def test_normalizer_and_clip_cov_generator_are_used():
    cfg = build_method_config("clip_cov", "official", overrides={"loss": {"clip_cov_ratio": 0.05,
                                                                          "clip_cov_lb": -1e9, "clip_cov_ub": 1e9}})
    lp = _leaf_logprobs(16)
    _, _, mask, rewards, _ = _batch(seed=17)
    adv = compute_advantages("grpo", rewards, GROUP_IDS)
    kw = dict(logprobs=lp, old_logprobs=lp.detach(), advantages=adv, mask=mask, stats=_plain_stats(lp))
    runs = [compute_objective(cfg, generator=torch.Generator().manual_seed(s), **kw).loss for s in (1, 1, 2)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    grpo = build_method_config("grpo", "official")
    a = compute_objective(grpo, **kw).loss
    b = compute_objective(grpo, normalizer=2 * int(mask.sum()), **kw).loss
    torch.testing.assert_close(b, a / 2)


def test_bad_shapes():
    cfg = MethodConfig()
    lp = _leaf_logprobs()
    mask = torch.ones(B, T, dtype=torch.bool)
    with pytest.raises(ValueError, match="advantages must be"):
        compute_objective(cfg, logprobs=lp, old_logprobs=lp.detach(), advantages=torch.zeros(B + 1), mask=mask,
                          stats=_plain_stats(lp))
    with pytest.raises(ValueError, match="logprobs and mask"):
        compute_objective(cfg, logprobs=lp, old_logprobs=lp.detach(), advantages=torch.zeros(B), mask=mask[:, :3],
                          stats=_plain_stats(lp))
