"""The training objective: unpack a :class:`~dynamo_rl.method_config.MethodConfig` into :mod:`dynamo_rl.core` calls.

This is plumbing, not math, so it lives outside ``core``. The order of operations (Eq. (15) of DynaMO,
arXiv 2602.19208, plus the Table 1 baselines) is:

1. advantages (B,) are broadcast to tokens (B, T) and detached;
2. Entropy Advantages shaping ``Ã = A + min(α·H, |A|/κ)`` if ``loss.entropy_adv_alpha`` is set;
3. DynaMO modulation ``Ã = A·f·g`` (Eq. 8-14) if ``modulation.enabled``, with the clip ranges of the loss;
4. the per-token policy loss ``loss.policy_loss`` (``ppo_clip``, ``clip_cov``, ``kl_cov``);
5. the Fork Tokens mask (top-ρ entropy tokens) if ``loss.fork_top_ratio`` is set;
6. aggregation with ``loss.loss_agg_mode`` and the optional ``normalizer``;
7. minus ``loss.entropy_coeff · aggregate(entropy)`` (Entropy Loss baseline).

For step 7 the entropy must carry gradient, but ``TokenStats.entropy`` is detached. A caller that uses
``entropy_coeff > 0`` therefore passes a differentiable entropy (B, T) as ``entropy_for_bonus``; it is an error to
omit it. The built-in trainer does so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from dynamo_rl.core.aggregation import aggregate, masked_mean
from dynamo_rl.core.losses import LossInputs, compute_policy_loss
from dynamo_rl.core.modulation import modulate_advantages
from dynamo_rl.core.shaping import entropy_advantages, fork_token_mask
from dynamo_rl.core.token_stats import TokenStats
from dynamo_rl.method_config import MethodConfig


@dataclass
class ObjectiveOutput:
    """``loss``: differentiable scalar to call ``backward()`` on. ``metrics``: detached 0-dim tensors by name.

    ``advantages`` (B, T): the final per-token advantages fed to the policy loss (after shaping and modulation),
    detached; ``loss_mask`` (B, T) bool: the tokens the policy loss was aggregated over.
    """

    loss: torch.Tensor
    metrics: dict[str, Any] = field(default_factory=dict)
    advantages: torch.Tensor | None = None
    loss_mask: torch.Tensor | None = None


def _broadcast_advantages(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if advantages.dim() == 1 and advantages.shape[0] == mask.shape[0]:
        return advantages.detach()[:, None].expand(mask.shape)
    if advantages.shape == mask.shape:
        return advantages.detach()
    raise ValueError(f"advantages must be (B,) or (B, T) = {tuple(mask.shape)}, got {tuple(advantages.shape)}")


def compute_objective(method: MethodConfig, *, logprobs: torch.Tensor, old_logprobs: torch.Tensor,
                      advantages: torch.Tensor, mask: torch.Tensor, stats: TokenStats,
                      normalizer: float | torch.Tensor | None = None,
                      entropy_range: tuple[Any, Any] | None = None, instability_max: Any = None,
                      instability_count: Any = None,
                      generator: torch.Generator | None = None,
                      entropy_for_bonus: torch.Tensor | None = None) -> ObjectiveOutput:
    """The policy-gradient loss of ``method`` on one (micro-)batch.

    Shapes: ``logprobs`` (B, T) differentiable log π_θ; ``old_logprobs`` (B, T) log π_old; ``advantages`` (B,) or
    (B, T); ``mask`` (B, T) valid response tokens; ``stats`` the :class:`TokenStats` of the current forward pass
    (its ``entropy`` and, for ``entropy_change_mode="exact"``, ``sum_sq_probs_centered``). ``normalizer`` replaces
    the aggregation denominator (e.g. the mini-batch token count under gradient accumulation; with Fork Tokens the
    caller must count *selected* tokens). ``entropy_range`` / ``instability_max`` / ``instability_count`` pass
    mini- or global-scope normalisers to the modulation (A6). ``generator`` seeds Clip-Cov's random selection. ``entropy_for_bonus``
    (B, T) differentiable entropy, required when ``loss.entropy_coeff > 0``.
    """
    cfg = method.loss
    if logprobs.dim() != 2 or mask.shape != logprobs.shape:
        raise ValueError(f"logprobs and mask must both be (B, T); got {tuple(logprobs.shape)}, {tuple(mask.shape)}")
    mask = mask.bool()
    metrics: dict[str, Any] = dict(stats.metrics(mask))
    if stats.nonfinite is not None:  # positions whose logits have no finite softmax: counted, then left out
        mask = mask & ~stats.nonfinite
    entropy = stats.entropy.detach()
    if entropy.shape != mask.shape:
        raise ValueError(f"stats.entropy shape {tuple(entropy.shape)} != mask shape {tuple(mask.shape)}")
    adv = _broadcast_advantages(advantages, mask).to(logprobs.dtype)

    if cfg.entropy_adv_alpha is not None:
        adv = entropy_advantages(adv, entropy, alpha=cfg.entropy_adv_alpha, kappa=cfg.entropy_adv_kappa)

    if method.modulation.enabled:
        modulation = modulate_advantages(
            adv, mask, logprobs=logprobs.detach(), old_logprobs=old_logprobs.detach(), entropy=entropy,
            eps_low=cfg.eps_low, eps_high=cfg.eps_high, sum_sq_probs_centered=stats.sum_sq_probs_centered,
            entropy_range=entropy_range, instability_max=instability_max, instability_count=instability_count,
            **method.modulation.core_kwargs())
        adv = modulation.advantages.detach()
        metrics.update(modulation.metrics)

    per_token = compute_policy_loss(cfg.policy_loss, LossInputs(logprobs, old_logprobs, adv, mask),
                                    **cfg.policy_loss_kwargs(generator))

    loss_mask = per_token.mask
    if cfg.fork_top_ratio is not None:
        loss_mask = loss_mask & fork_token_mask(entropy, mask, cfg.fork_top_ratio)
        metrics["fork_token_frac"] = masked_mean(loss_mask.to(entropy.dtype), mask)

    pg_loss = aggregate(per_token.loss, loss_mask, cfg.loss_agg_mode, normalizer)
    loss = pg_loss
    if cfg.entropy_coeff > 0:
        if entropy_for_bonus is None:
            raise ValueError(f"loss.entropy_coeff={cfg.entropy_coeff} needs a differentiable entropy_for_bonus (B, T); "
                             "TokenStats.entropy is detached")
        if entropy_for_bonus.shape != mask.shape:
            raise ValueError(f"entropy_for_bonus shape {tuple(entropy_for_bonus.shape)} != mask {tuple(mask.shape)}")
        entropy_term = aggregate(entropy_for_bonus, mask, cfg.loss_agg_mode, normalizer)
        loss = loss - cfg.entropy_coeff * entropy_term
        metrics["entropy_bonus"] = entropy_term.detach()

    metrics.update({name: value.detach() for name, value in per_token.metrics.items()})
    metrics["pg_loss"] = pg_loss.detach()
    metrics["entropy"] = masked_mean(entropy, mask)
    metrics["advantage_mean"] = masked_mean(adv, mask)
    return ObjectiveOutput(loss=loss, metrics=metrics, advantages=adv, loss_mask=loss_mask)
