"""Per-token policy losses: the clipped surrogate of Eq. (3) / Eq. (15) of DynaMO (arXiv 2602.19208) and the
Clip-Cov / KL-Cov baselines (Cui et al. 2025, arXiv 2505.22617).

Each loss maps :class:`LossInputs` (all (B, T)) to a :class:`PerTokenLoss`: the unreduced loss matrix (zero at masked
positions), the mask to aggregate it with, and metric tensors (0-dim, detached; no host sync). Reduction is a
separate step (:func:`dynamo_rl.core.aggregation.aggregate`).

The log-ratio log π − log π_old is clamped to [−20, 20] before exponentiation (as verl does for the vanilla loss) so
that stale or padded log-probs cannot produce inf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from dynamo_rl.core.aggregation import masked_mean
from dynamo_rl.core.registry import Registry

LOG_RATIO_CLAMP = 20.0


@dataclass
class LossInputs:
    """Inputs of a per-token policy loss; every tensor is (B, T).

    ``logprobs`` log π_θ(o_t|s_t) (differentiable), ``old_logprobs`` log π_old (the behaviour policy, no gradient),
    ``advantages`` the per-token advantage Ã_t (no gradient), ``mask`` valid response tokens (bool or 0/1),
    ``entropy`` token entropy H_t (optional; unused by the built-in losses).
    """

    logprobs: torch.Tensor
    old_logprobs: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    entropy: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.logprobs.dim() != 2:
            raise ValueError(f"logprobs must be (B, T), got shape {tuple(self.logprobs.shape)}")
        shape = self.logprobs.shape
        for name in ("old_logprobs", "advantages", "mask", "entropy"):
            value = getattr(self, name)
            if value is not None and value.shape != shape:
                raise ValueError(f"{name} shape {tuple(value.shape)} != logprobs shape {tuple(shape)}")
        self.mask = self.mask.bool()
        self.old_logprobs = self.old_logprobs.detach()
        self.advantages = self.advantages.detach()


@dataclass
class PerTokenLoss:
    """Output of a policy loss: ``loss`` (B, T) (0 where masked), ``mask`` (B, T) bool, ``metrics`` 0-dim tensors."""

    loss: torch.Tensor
    mask: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


PolicyLossFn = Callable[..., PerTokenLoss]

POLICY_LOSSES: Registry[PolicyLossFn] = Registry("policy loss")


def _ratio(inputs: LossInputs) -> tuple[torch.Tensor, torch.Tensor]:
    log_ratio = (inputs.logprobs - inputs.old_logprobs).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return log_ratio, torch.exp(log_ratio)


def _zero_masked(loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, loss, torch.zeros_like(loss))


def _check_eps(eps_low: float, eps_high: float) -> None:
    if not (eps_low >= 0 and eps_high >= 0):
        raise ValueError(f"eps_low and eps_high must be ≥ 0, got eps_low={eps_low!r}, eps_high={eps_high!r}")


def _rank_desc(keys: torch.Tensor) -> torch.Tensor:
    """Rank of each entry of the flat tensor ``keys`` in descending order; ties go to the lower index (stable)."""
    order = torch.sort(keys, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel(), device=order.device)
    return ranks


def _count(ratio: float, n_valid: torch.Tensor, rounding: str) -> torch.Tensor:
    """⌊ratio·N⌋ or ⌈ratio·N⌉ in float64 with a 1e-9 tolerance, so 0.2·15 = 3.0000000000000004 rounds to 3."""
    x = ratio * n_valid.to(torch.float64)
    return torch.floor(x + 1e-9) if rounding == "floor" else torch.ceil(x - 1e-9)


def token_covariance(logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cui et al. token covariance ``(log π_t − mean log π)·(A_t − mean A)`` with means over valid tokens (B, T).

    Detached; −inf at masked positions so that they are never selected.
    """
    logprobs = logprobs.detach()
    cov = (logprobs - masked_mean(logprobs, mask)) * (advantages - masked_mean(advantages, mask))
    return cov.masked_fill(~mask, float("-inf"))


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip(inputs: LossInputs, *, eps_low: float = 0.2, eps_high: float = 0.2,
             clip_ratio_c: float | None = 10.0) -> PerTokenLoss:
    """Clipped surrogate with decoupled bounds and dual clip, Eq. (3) / Eq. (15) of DynaMO (arXiv 2602.19208).

    Per token, with r = exp(log π − log π_old) and advantage A (verl ``compute_policy_loss`` semantics):

    * ``ℓ = max(−A·r, −A·clip(r, 1−eps_low, 1+eps_high))`` (the PPO pessimistic bound),
    * for A < 0 and ``clip_ratio_c`` = c not None: ``ℓ = min(ℓ, −c·A)`` (dual clip, Ye et al. 2020), which caps the
      loss of a negative-advantage token whose ratio has exploded.

    Metrics (masked means over valid tokens): ``clipfrac`` (the clipped branch is active), ``clipfrac_high``
    (A > 0, r > 1+eps_high), ``clipfrac_low`` (A < 0, r < 1−eps_low), ``dual_clipfrac`` (the dual clip is active),
    ``approx_kl`` (mean of log π_old − log π, verl's ``ppo_kl``), ``ratio_mean``.
    """
    _check_eps(eps_low, eps_high)
    if clip_ratio_c is not None and not clip_ratio_c > 1:
        raise ValueError(f"clip_ratio_c must be > 1 or None, got {clip_ratio_c!r}")
    mask, adv = inputs.mask, inputs.advantages
    log_ratio, ratio = _ratio(inputs)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    loss = torch.maximum(unclipped, clipped)
    negative = adv < 0
    if clip_ratio_c is not None:
        dual = -adv * clip_ratio_c
        dual_active = negative & (loss > dual)
        loss = torch.where(negative, torch.minimum(loss, dual), loss)
    else:
        dual_active = torch.zeros_like(mask)
    with torch.no_grad():
        metrics = {
            "clipfrac": masked_mean((clipped > unclipped).to(ratio.dtype), mask),
            "clipfrac_high": masked_mean(((adv > 0) & (ratio > 1.0 + eps_high)).to(ratio.dtype), mask),
            "clipfrac_low": masked_mean((negative & (ratio < 1.0 - eps_low)).to(ratio.dtype), mask),
            "dual_clipfrac": masked_mean(dual_active.to(ratio.dtype), mask),
            "approx_kl": masked_mean(-log_ratio, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return PerTokenLoss(_zero_masked(loss, mask), mask, metrics)


@POLICY_LOSSES.register("clip_cov")
def clip_cov(inputs: LossInputs, *, eps_low: float = 1.0, eps_high: float = 1.0, clip_cov_ratio: float = 2e-4,
             clip_cov_lb: float = 1.0, clip_cov_ub: float = 5.0,
             generator: torch.Generator | None = None) -> PerTokenLoss:
    """Clip-Cov (Cui et al. 2025, arXiv 2505.22617), a Table 1 baseline of DynaMO (arXiv 2602.19208).

    The PPO loss of Eq. (3) without dual clip (verl ``compute_policy_loss_clip_cov``), except that
    ``max(⌊clip_cov_ratio·N_valid⌋, 1)`` tokens, drawn uniformly at random among the valid tokens that PPO did not
    already clip and whose covariance (:func:`token_covariance`) lies strictly inside (clip_cov_lb, clip_cov_ub),
    get loss 0 (no gradient). Fewer are zeroed if fewer candidates exist. ``generator`` makes the draw
    deterministic (it must live on the device of the inputs, or on CPU for CPU inputs).

    Metrics: ``clip_cov_frac`` (fraction of valid tokens zeroed), ``clipfrac``, ``approx_kl``, ``ratio_mean``.
    """
    _check_eps(eps_low, eps_high)
    if not clip_cov_ratio > 0:
        raise ValueError(f"clip_cov_ratio must be > 0, got {clip_cov_ratio!r}")
    if not clip_cov_lb < clip_cov_ub:
        raise ValueError(f"clip_cov_lb must be < clip_cov_ub, got ({clip_cov_lb!r}, {clip_cov_ub!r})")
    mask, adv = inputs.mask, inputs.advantages
    log_ratio, ratio = _ratio(inputs)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    with torch.no_grad():
        clipped_by_ppo = (clipped > unclipped) & mask
        cov = token_covariance(inputs.logprobs, adv, mask)
        candidates = mask & ~clipped_by_ppo & (cov > clip_cov_lb) & (cov < clip_cov_ub)
        keys = torch.rand(mask.shape, generator=generator,
                          device=generator.device if generator is not None else mask.device).to(mask.device)
        keys = torch.where(candidates, keys, torch.full_like(keys, -1.0))
        num_zeroed = _count(clip_cov_ratio, mask.sum(), "floor").clamp(min=1.0)
        zeroed = candidates & (_rank_desc(keys.flatten()).view(mask.shape) < num_zeroed)
    loss = torch.maximum(unclipped, clipped) * (~zeroed).to(ratio.dtype)
    with torch.no_grad():
        metrics = {
            "clip_cov_frac": masked_mean(zeroed.to(ratio.dtype), mask),
            "clipfrac": masked_mean(clipped_by_ppo.to(ratio.dtype), mask),
            "approx_kl": masked_mean(-log_ratio, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return PerTokenLoss(_zero_masked(loss, mask), mask, metrics)


@POLICY_LOSSES.register("kl_cov")
def kl_cov(inputs: LossInputs, *, kl_cov_ratio: float = 2e-3, kl_cov_coef: float = 1.0) -> PerTokenLoss:
    """KL-Cov (Cui et al. 2025, arXiv 2505.22617), a Table 1 baseline of DynaMO (arXiv 2602.19208).

    No ratio clipping. Every valid token has loss ``−A·r``; the ``max(⌊kl_cov_ratio·N_valid⌋, 1)`` valid tokens with
    the largest *signed* covariance (:func:`token_covariance`; ties to the lower flat index) additionally get
    ``kl_cov_coef·|log π − log π_old|`` (verl ``compute_policy_loss_kl_cov``).

    Metrics: ``kl_cov_frac`` (fraction of valid tokens penalised), ``approx_kl_abs`` (mean |log π − log π_old|),
    ``approx_kl``, ``ratio_mean``.
    """
    if not kl_cov_ratio > 0:
        raise ValueError(f"kl_cov_ratio must be > 0, got {kl_cov_ratio!r}")
    if not kl_cov_coef >= 0:
        raise ValueError(f"kl_cov_coef must be ≥ 0, got {kl_cov_coef!r}")
    mask, adv = inputs.mask, inputs.advantages
    log_ratio, ratio = _ratio(inputs)
    with torch.no_grad():
        cov = token_covariance(inputs.logprobs, adv, mask)
        num_penalised = _count(kl_cov_ratio, mask.sum(), "floor").clamp(min=1.0)
        penalised = mask & (_rank_desc(cov.flatten()).view(mask.shape) < num_penalised)
    abs_kl = log_ratio.abs()
    loss = -adv * ratio + kl_cov_coef * abs_kl * penalised.to(ratio.dtype)
    with torch.no_grad():
        metrics = {
            "kl_cov_frac": masked_mean(penalised.to(ratio.dtype), mask),
            "approx_kl_abs": masked_mean(abs_kl, mask),
            "approx_kl": masked_mean(-log_ratio, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return PerTokenLoss(_zero_masked(loss, mask), mask, metrics)


def compute_policy_loss(name: str, inputs: LossInputs, **kwargs: object) -> PerTokenLoss:
    """Per-token loss from the policy loss registered as ``name`` in :data:`POLICY_LOSSES`.

    The surrogate of Eq. (3) / Eq. (15) of DynaMO (arXiv 2602.19208) or a baseline; ``kwargs`` go to the loss
    (e.g. ``eps_low``, ``eps_high``, ``clip_ratio_c`` for ``ppo_clip``). Raises ``KeyError`` listing valid names.
    """
    return POLICY_LOSSES.get(name)(inputs, **kwargs)
