"""DynaMO's token advantage modulation as a verl actor loss, and a singleton-safe GRPO advantage estimator.

:func:`dynamo_ppo_loss` has the contract of ``verl.workers.utils.losses.ppo_loss`` (``(config, model_output, data,
dp_group) -> (loss, metrics)``, called by verl's engines once per micro-batch). It

1. reads the current policy's ``log_probs`` and ``entropy`` from ``model_output`` (engine flag ``calculate_entropy``;
   ``sum_pi_squared`` too when present, logged as ``mod/sum_sq_probs_mean``), converts them to padded ``(B, T)``
   response tensors exactly as ``ppo_loss`` does (``no_padding_2_padding``), and the micro-batch's
   ``old_log_probs``, ``advantages`` and ``response_mask`` the same way (``to_padded_tensor``);
2. applies :func:`dynamo_rl.core.modulation.modulate_advantages` (GC Eq 8-9, UMS Eq 10-13, Ã = A·f·g Eq 14 of DynaMO,
   arXiv 2602.19208) with the clip ranges of verl's actor config (``clip_ratio_low/high``);
3. writes Ã back into a shallow copy of the micro-batch, in the layout the field had (jagged nested tensor or padded),
   and calls verl's own ``ppo_loss`` on it. So the policy loss selected by ``policy_loss.loss_mode`` (any registered
   one), the aggregation mode and global-batch normalisation, the entropy bonus and the KL loss are verl's code,
   unchanged; with modulation off (or all factors 1) the result is ``ppo_loss``'s bit for bit.

The modulation options come from the trainer: it installs ``functools.partial(dynamo_ppo_loss, config=<ActorConfig>,
modulation=<ModulationConfig.core_kwargs()>)`` on the workers with ``set_loss_fn``. Metrics are the core's ``mod/*``
keys as they come (verl's trainer adds ``actor/``; ``DynamoPPOTrainer`` strips it again, so they are logged as
``mod/*`` like in the other engines). The parity test (``tests/adapters/verl/test_parity_verl.py``) checks that the
modulated advantages, the loss and its gradient equal the built-in trainer's ``compute_objective`` on the shared
scenario of ``tests/parity/scenario.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from verl.trainer.ppo.core_algos import register_adv_est
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.losses import ppo_loss
from verl.workers.utils.padding import no_padding_2_padding

from dynamo_rl.adapters.verl.settings import EXACT_REFUSAL
from dynamo_rl.core.advantages import compute_advantages
from dynamo_rl.core.modulation import modulate_advantages

ADV_ESTIMATOR_NAME = "dynamo_grpo"
SUM_SQ_PROBS_MEAN = "mod/sum_sq_probs_mean"
"""Mean Σ_a π(a)² of the current policy over the micro-batch's valid response tokens (the TRL adapter's name)."""

__all__ = ["ADV_ESTIMATOR_NAME", "SUM_SQ_PROBS_MEAN", "dynamo_grpo_advantage", "dynamo_ppo_loss",
           "modulated_advantages", "replace_field"]


def _clip_ranges(config: Any) -> tuple[float, float]:
    """(ε_low, ε_high) as verl's vanilla policy loss resolves them (``clip_ratio_low/high``, else ``clip_ratio``)."""
    clip = config.clip_ratio
    low = config.clip_ratio_low if config.clip_ratio_low is not None else clip
    high = config.clip_ratio_high if config.clip_ratio_high is not None else clip
    return float(low), float(high)


def _aggregation(name: str) -> AggregationType:
    """How verl reduces a modulation metric over micro-batches: ``*_max`` by max, ``*_min`` by min, token counts
    (``*_tokens``) by sum, else mean."""
    if name.endswith("_max"):
        return AggregationType.MAX
    if name.endswith("_min"):
        return AggregationType.MIN
    if name.endswith("_tokens"):
        return AggregationType.SUM
    return AggregationType.MEAN


def replace_field(data: Any, key: str, padded: torch.Tensor) -> Any:
    """A shallow copy of the micro-batch TensorDict with ``key`` replaced by ``padded`` (B, T).

    A jagged nested field keeps its layout and offsets (row r keeps its first ``len_r`` entries of ``padded``); a padded
    field is replaced by ``padded`` cut to the field's width.
    """
    old = data[key]
    out = data.clone(recurse=False)
    if old.is_nested:
        # as verl's response_to_nested: a list of row slices (nested_tensor_from_jagged without cached max_seqlen
        # pads to the total length in to_padded_tensor)
        lengths = old.offsets().diff().tolist()
        rows = [padded[r, :n].to(old.dtype) for r, n in enumerate(lengths)]
        out[key] = torch.nested.as_nested_tensor(rows, layout=torch.jagged)
    else:
        out[key] = padded[:, : old.shape[1]].to(old.dtype)
    return out


def modulated_advantages(config: Any, model_output: dict, data: Any, modulation: dict[str, Any]):
    """The :class:`~dynamo_rl.core.modulation.Modulation` of this micro-batch (padded ``(B, T)`` tensors)."""
    if modulation.get("stabilization") and modulation.get("entropy_change_mode") == "exact":
        raise ValueError(f"dynamo_ppo_loss: {EXACT_REFUSAL}")
    entropy = model_output.get("entropy", None)
    if entropy is None:
        raise ValueError("dynamo_ppo_loss needs model_output['entropy']: the engine must run with "
                         "calculate_entropy=True (DynamoPPOTrainer sets actor_rollout_ref.actor.calculate_entropy)")
    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    entropy = no_padding_2_padding(entropy, data)
    padded = data.select("response_mask", "old_log_probs", "advantages").to_padded_tensor()
    mask = padded["response_mask"].to(torch.bool)
    advantages = padded["advantages"]
    if advantages.shape != log_prob.shape:
        raise ValueError(f"advantages shape {tuple(advantages.shape)} != log_probs shape {tuple(log_prob.shape)}")
    eps_low, eps_high = _clip_ranges(config)
    return modulate_advantages(advantages, mask, logprobs=log_prob.detach(), old_logprobs=padded["old_log_probs"],
                               entropy=entropy.detach(), eps_low=eps_low, eps_high=eps_high, **modulation)


def dynamo_ppo_loss(config: Any, model_output: dict, data: Any, dp_group: Any = None, *,
                    modulation: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """verl ``ppo_loss`` on DynaMO-modulated advantages (see the module docstring).

    Args:
        config: verl ``ActorConfig`` (as bound by ``partial`` in ``set_loss_fn``).
        model_output: the engine's output: jagged ``log_probs`` and ``entropy`` (``sum_pi_squared`` optional).
        data: the micro-batch TensorDict (``old_log_probs``, ``advantages``, ``response_mask``, ``prompts``,
            ``responses``, non-tensor ``dp_size``/``batch_num_tokens``/``global_batch_size``, ...).
        dp_group: passed through to ``ppo_loss``.
        modulation: ``ModulationConfig.core_kwargs()``; ``None`` or both GC and UMS off → plain ``ppo_loss``.

    Returns:
        ``(loss, metrics)`` of ``ppo_loss`` plus the core's ``mod/*`` metrics (``*_max``/``*_min`` reduced by
        max/min over micro-batches, ``mod/nonfinite_tokens`` by sum, the rest by mean) and ``mod/sum_sq_probs_mean``
        when the engine returned Σπ².
    """
    if modulation is None or not (modulation.get("gradient_compensation") or modulation.get("stabilization")):
        return ppo_loss(config, model_output, data, dp_group)
    result = modulated_advantages(config, model_output, data, modulation)
    loss, metrics = ppo_loss(config, model_output, replace_field(data, "advantages", result.advantages), dp_group)
    for name, value in result.metrics.items():
        metrics[name] = Metric(value=value.detach().float(), aggregation=_aggregation(name))
    sum_pi_squared = model_output.get("sum_pi_squared", None)
    if sum_pi_squared is not None:
        padded = no_padding_2_padding(sum_pi_squared, data)
        mask = data.select("response_mask").to_padded_tensor()["response_mask"].to(torch.bool)
        value = padded.detach()[mask].float().mean() if mask.any() else padded.new_zeros(())
        metrics[SUM_SQ_PROBS_MEAN] = Metric(value=value, aggregation=AggregationType.MEAN)
    return loss, metrics


@register_adv_est(ADV_ESTIMATOR_NAME)
def dynamo_grpo_advantage(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: np.ndarray,
                          epsilon: float = 1e-6, norm_adv_by_std_in_grpo: bool = True, config: Any = None,
                          **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO outcome advantage over ragged uid groups (Eq 2 of DynaMO, arXiv 2602.19208), singleton groups → 0.

    Same inputs and outputs as verl's ``compute_grpo_outcome_advantage``: ``token_level_rewards`` and
    ``response_mask`` (bs, T), ``index`` (bs,) group ids (verl's ``uid``); returns ``(advantages, returns)`` (bs, T),
    both the sequence advantage broadcast over valid tokens. Differs from verl's ``grpo`` only for a group of one
    response (verl: mean 0, std 1, so A = R; here A = 0, no baseline → no signal). With
    ``algorithm.norm_adv_by_std_in_grpo=False`` it is Dr. GRPO (no std division).
    """
    if config is not None and hasattr(config, "get"):
        norm_adv_by_std_in_grpo = bool(config.get("norm_adv_by_std_in_grpo", norm_adv_by_std_in_grpo))
    scores = token_level_rewards.sum(dim=-1)
    _, group_ids = np.unique(np.asarray(index, dtype=object).astype(str), return_inverse=True)
    group_ids = torch.as_tensor(group_ids.reshape(-1), dtype=torch.long, device=scores.device)
    with torch.no_grad():
        if norm_adv_by_std_in_grpo:
            adv = compute_advantages("grpo", scores, group_ids, eps=epsilon)
        else:
            adv = compute_advantages("dr_grpo", scores, group_ids)
    adv = adv.unsqueeze(-1) * response_mask
    return adv, adv
