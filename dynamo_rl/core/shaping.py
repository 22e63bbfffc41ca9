"""Entropy-based advantage shaping and token masks: the Entropy Advantages and Fork Tokens baselines of Table 1 of
DynaMO (arXiv 2602.19208), applied around the surrogate of Eq. (3).

Shapes: (B, T) tensors throughout; ``mask`` marks valid response tokens (bool or 0/1).
"""

from __future__ import annotations

import torch


def entropy_advantages(advantages: torch.Tensor, entropy: torch.Tensor, *, alpha: float = 0.4,
                       kappa: float = 2.0) -> torch.Tensor:
    """Entropy Advantages (Cheng et al. 2025, arXiv 2506.14758), a Table 1 baseline of DynaMO (arXiv 2602.19208).

    ``Ã_t = A_t + ψ_t`` with ``ψ_t = min(alpha·H_t.detach(), |A_t| / kappa)``. ψ ≥ 0 and ψ ≤ |A|/κ < |A| for κ > 1,
    so a negative advantage shrinks in magnitude but never flips sign, and A = 0 stays 0. No gradient flows through
    H or A. Shapes: ``advantages`` (B, T) (or anything broadcastable with ``entropy``), ``entropy`` (B, T).
    """
    if not alpha >= 0:
        raise ValueError(f"alpha must be ≥ 0, got {alpha!r}")
    if not kappa > 1:
        raise ValueError(f"kappa must be > 1 (otherwise an advantage can reach or cross 0), got {kappa!r}")
    advantages = advantages.detach()
    psi = torch.minimum(alpha * entropy.detach(), advantages.abs() / kappa)
    return advantages + psi


def fork_token_mask(entropy: torch.Tensor, mask: torch.Tensor, top_ratio: float = 0.2) -> torch.Tensor:
    """Fork Tokens (Wang et al. 2025, arXiv 2506.01939), a Table 1 baseline of DynaMO (arXiv 2602.19208).

    Returns a bool mask (B, T) selecting the ``⌈top_ratio·N_valid⌉`` valid tokens with the highest entropy over the
    whole tensor (the authors' ``get_global_entropy_top_mask`` over a micro-batch). Ties are broken
    deterministically towards the lower flat (row-major) index. The policy loss is then aggregated with
    ``mask & fork_token_mask(...)``, so with ``token-mean`` the denominator is the number of *selected* tokens (the
    authors' code; the paper's formula divides by all tokens, a 1/ρ scale difference).
    """
    if not 0 < top_ratio <= 1:
        raise ValueError(f"top_ratio must be in (0, 1], got {top_ratio!r}")
    if entropy.shape != mask.shape:
        raise ValueError(f"entropy shape {tuple(entropy.shape)} != mask shape {tuple(mask.shape)}")
    mask = mask.bool()
    keys = entropy.detach().to(torch.float64).masked_fill(~mask, float("-inf")).flatten()
    order = torch.sort(keys, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel(), device=order.device)
    num_selected = torch.ceil(top_ratio * mask.sum().to(torch.float64) - 1e-9)
    return mask & (ranks.view(mask.shape) < num_selected)
