"""dynamo_ppo_loss against verl's ppo_loss on engine-shaped micro-batches (CPU, verl 0.9.x environment only)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("verl.trainer.ppo.core_algos")
import torch  # noqa: E402
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_adv_estimator_fn  # noqa: E402
from verl.workers.utils.losses import ppo_loss  # noqa: E402
from verl_helpers import MODULATION, MicroBatch, actor_config  # noqa: E402

from dynamo_rl.adapters.verl.loss import SUM_SQ_PROBS_MEAN, dynamo_ppo_loss, replace_field  # noqa: E402
from dynamo_rl.core.modulation import modulate_advantages  # noqa: E402


def _run(loss_fn, batch: MicroBatch, config, **kwargs):
    batch.log_prob_values.grad = None
    loss, metrics = loss_fn(config, batch.model_output(), batch.data, **kwargs)
    loss.backward()
    return loss.detach().clone(), batch.log_prob_values.grad.clone(), metrics


def _values(metrics: dict) -> dict:
    return {k: (v.aggregate() if hasattr(v, "aggregate") else v) for k, v in metrics.items()}


CONFIGS = {
    "vanilla": {},
    "vanilla_kl_entropy": {"use_kl_loss": True, "kl_loss_coef": 0.05, "entropy_coeff": 0.01},
    "seq_mean_agg": {"loss_agg_mode": "seq-mean-token-mean"},
    "gspo": {"policy_loss": {"loss_mode": "gspo"}, "clip_ratio_low": 3e-4, "clip_ratio_high": 4e-4},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("modulation", ["none", "off", "unit_factors"])
def test_unit_weights_reproduce_ppo_loss_exactly(name, modulation):
    """Weights ≡ 1 (modulation absent, switched off, or on with μ_max = λ_min = 1): bitwise ppo_loss, incl. grads."""
    config = actor_config(**CONFIGS[name])
    batch = MicroBatch(seed=1)
    kwargs = {"none": {}, "off": {"modulation": {**MODULATION, "gradient_compensation": False,
                                                  "stabilization": False}},
              "unit_factors": {"modulation": {**MODULATION, "mu_max": 1.0, "lambda_min": 1.0}}}[modulation]
    ref_loss, ref_grad, ref_metrics = _run(ppo_loss, batch, config)
    loss, grad, metrics = _run(dynamo_ppo_loss, batch, config, **kwargs)
    assert torch.equal(loss, ref_loss)
    assert torch.equal(grad, ref_grad)
    ours = _values(metrics)
    for key, value in _values(ref_metrics).items():
        assert ours[key] == value, key
    if modulation == "unit_factors":  # the modulation path really ran (metrics present, factors exactly 1)
        assert ours["mod/factor_mean"] == 1.0


@pytest.mark.parametrize("nested", [True, False])
@pytest.mark.parametrize("name", ["vanilla", "vanilla_kl_entropy"])
def test_modulation_equals_core_modulation_then_ppo_loss(name, nested):
    """With GC/UMS on, the loss differs from ppo_loss and equals ppo_loss on Ã = core.modulate_advantages(...)
    computed here from the test's own padded view of the same tensors."""
    config = actor_config(**CONFIGS[name])
    batch = MicroBatch(seed=2, nested=nested)
    mask = batch.padded("response_mask").bool()
    expected = modulate_advantages(
        batch.padded("advantages"), mask, logprobs=batch.padded_response(batch.log_prob_values.detach()),
        old_logprobs=batch.padded("old_log_probs"), entropy=batch.padded_response(batch.entropy_values),
        eps_low=0.2, eps_high=0.28, **MODULATION)
    assert not torch.allclose(expected.advantages[mask], batch.padded("advantages")[mask])  # factors ≠ 1 here

    plain_loss, plain_grad, _ = _run(ppo_loss, batch, config)
    loss, grad, metrics = _run(dynamo_ppo_loss, batch, config, modulation=MODULATION)
    assert not torch.allclose(grad, plain_grad)
    assert not torch.equal(loss, plain_loss)

    reference = replace_field(batch.data, "advantages", expected.advantages)
    batch.log_prob_values.grad = None
    ref_loss, _ = ppo_loss(config, batch.model_output(), reference)
    ref_loss.backward()
    assert torch.equal(loss, ref_loss.detach())
    assert torch.equal(grad, batch.log_prob_values.grad)
    values = _values(metrics)
    assert values["mod/compensation_max"] == pytest.approx(float(expected.compensation[mask].max()))
    assert values["mod/stabilization_min"] == pytest.approx(float(expected.stabilization[mask].min()))
    # the core's metric names, as they come (verl's trainer adds actor/, DynamoPPOTrainer strips it again)
    assert {k for k in metrics if "mod/" in k} == set(expected.metrics)
    assert not any(k.startswith("dynamo/") for k in metrics)
    assert metrics["mod/nonfinite_tokens"].aggregation.value == "sum"
    assert metrics["mod/instability_max"].aggregation.value == "max"


def test_replace_field_keeps_the_jagged_layout():
    batch = MicroBatch(seed=3)
    padded = torch.arange(4 * batch.width, dtype=torch.float32).reshape(4, batch.width)
    out = replace_field(batch.data, "advantages", padded)
    assert out["advantages"].is_nested
    assert out["advantages"].offsets().tolist() == batch.data["advantages"].offsets().tolist()
    back = out.select("advantages").to_padded_tensor()["advantages"]
    for r, n in enumerate(batch.response_lens):
        assert torch.equal(back[r, :n], padded[r, :n])
    assert torch.equal(batch.data["advantages"].values(), MicroBatch(seed=3).data["advantages"].values())  # untouched


def test_missing_entropy_is_a_clear_error():
    batch = MicroBatch(seed=4)
    with pytest.raises(ValueError, match="calculate_entropy"):
        dynamo_ppo_loss(actor_config(), batch.model_output(entropy=False), batch.data, modulation=MODULATION)


def test_sum_pi_squared_is_reported_when_the_engine_returns_it():
    batch = MicroBatch(seed=5)
    output = batch.model_output()
    values = torch.rand(batch.log_prob_values.numel(), generator=torch.Generator().manual_seed(0))
    output["sum_pi_squared"] = torch.nested.nested_tensor_from_jagged(values, batch.offsets)
    _, metrics = dynamo_ppo_loss(actor_config(), output, batch.data, modulation=MODULATION)
    mask = batch.padded("response_mask").bool()
    assert SUM_SQ_PROBS_MEAN == "mod/sum_sq_probs_mean"  # the TRL adapter's name
    assert _values(metrics)[SUM_SQ_PROBS_MEAN] == pytest.approx(
        float(batch.padded_response(values)[mask].mean()))


# ------------------------------------------------------------------------------------------------ dynamo_grpo
def test_dynamo_grpo_matches_verl_grpo_on_ragged_groups_and_zeroes_singletons():
    fn = get_adv_estimator_fn("dynamo_grpo")
    rng = np.random.default_rng(0)
    uids = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 8 + ["d"], dtype=object)  # ragged, "d" is a singleton
    B, T = len(uids), 6
    lengths = rng.integers(1, T + 1, size=B)
    mask = (torch.arange(T)[None, :] < torch.as_tensor(lengths)[:, None]).float()
    rewards = torch.zeros(B, T)
    rewards[torch.arange(B), torch.as_tensor(lengths) - 1] = torch.as_tensor(rng.integers(0, 2, size=B)).float()
    rewards[-1] = 0.0
    rewards[-1, lengths[-1] - 1] = 1.0  # the singleton is correct: verl gives it A = R = 1, we give 0
    ours, returns = fn(token_level_rewards=rewards, response_mask=mask, index=uids, config=None)
    ref, _ = compute_grpo_outcome_advantage(rewards, mask, uids)
    group = uids != "d"
    assert torch.allclose(ours[torch.as_tensor(group)], ref[torch.as_tensor(group)], atol=1e-6)
    assert torch.equal(ours[~torch.as_tensor(group)], torch.zeros(1, T))
    assert ref[-1].sum() > 0
    assert torch.equal(returns, ours)
    dr, _ = fn(token_level_rewards=rewards, response_mask=mask, index=uids, norm_adv_by_std_in_grpo=False)
    ref_dr, _ = compute_grpo_outcome_advantage(rewards, mask, uids, norm_adv_by_std_in_grpo=False)
    assert torch.allclose(dr[torch.as_tensor(group)], ref_dr[torch.as_tensor(group)], atol=1e-6)
