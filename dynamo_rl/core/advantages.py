"""Outcome advantages over ragged groups (GRPO backbone, Eq. (2) of DynaMO, arXiv 2602.19208, and baselines).

Every estimator maps per-response scalar rewards ``rewards (B,)`` and prompt ids ``group_ids (B,)`` to per-response
advantages ``(B,)``; callers broadcast them to tokens. Groups are ragged (n_i rollouts per prompt under Dynamic
Rollout Allocation): all group statistics go through :mod:`dynamo_rl.core.groups`.

Singleton groups (n_i = 1) get advantage 0 in ``grpo``, ``dr_grpo`` and ``rloo``: a single response has no baseline,
so it carries no learning signal. This differs on purpose from verl, which uses mean 0 and std 1 for a singleton and
therefore gives A = R (see ``docs/implementation_details.md``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dynamo_rl.core.groups import group_count, group_mean, group_std
from dynamo_rl.core.registry import Registry

AdvantageFn = Callable[..., torch.Tensor]

ADVANTAGES: Registry[AdvantageFn] = Registry("advantage estimator")


@ADVANTAGES.register("grpo")
def grpo(rewards: torch.Tensor, group_ids: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """GRPO group-normalised advantage, Eq. (2) of DynaMO (arXiv 2602.19208).

    ``A_i = (R_i − mean_g R) / (std_g R + eps)`` with the unbiased (n−1) standard deviation, as verl's
    ``compute_grpo_outcome_advantage`` (ε = 1e-6 there; TRL uses 1e-4). A group whose rewards are all equal gets
    A = 0; a singleton group gets A = 0 (verl: A = R).

    Shapes: ``rewards`` (B,) float, ``group_ids`` (B,) int → (B,) in the dtype of ``rewards``.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    centred = rewards - group_mean(rewards, group_ids)
    return centred / (group_std(rewards, group_ids, unbiased=True) + eps)


@ADVANTAGES.register("dr_grpo")
def dr_grpo(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Dr. GRPO advantage (Liu et al. 2025): the group-centred reward ``R_i − mean_g R``, no std division.

    The GRPO backbone of Eq. (2) of DynaMO (arXiv 2602.19208) without the std normalisation. Singleton → 0.
    Shapes: (B,), (B,) → (B,).
    """
    return rewards - group_mean(rewards, group_ids)


@ADVANTAGES.register("rloo")
def rloo(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """REINFORCE leave-one-out (Ahmadian et al. 2024): ``A_i = R_i − mean_{j≠i, j∈g} R_j``.

    Equals ``n/(n−1) · (R_i − mean_g R)``; a singleton group (no other response) gets 0. A variant of the
    baseline in Eq. (2) of DynaMO (arXiv 2602.19208). Shapes: (B,), (B,) → (B,).
    """
    n = group_count(group_ids).to(rewards.dtype)
    scale = torch.where(n > 1, n / (n - 1).clamp(min=1), torch.zeros_like(n))
    return scale * (rewards - group_mean(rewards, group_ids))


@ADVANTAGES.register("w_reinforce")
def w_reinforce(rewards: torch.Tensor, group_ids: torch.Tensor, *, lam: float = 0.1) -> torch.Tensor:
    """W-REINFORCE (Zhu et al. 2025, arXiv 2506.01347), a Table 1 baseline of DynaMO (arXiv 2602.19208).

    ``A_i = lam`` for a correct response (reward > 0, so both {0, 1} and DAPO's ±1 scores work) and ``−1`` for an
    incorrect one. No group baseline and no std normalisation; ``group_ids`` is only validated.
    Shapes: (B,), (B,) → (B,).
    """
    if group_ids.shape != rewards.shape:
        raise ValueError(f"group_ids shape {tuple(group_ids.shape)} != rewards shape {tuple(rewards.shape)}")
    positive = torch.full_like(rewards, float(lam))
    return torch.where(rewards > 0, positive, -torch.ones_like(rewards))


def compute_advantages(name: str, rewards: torch.Tensor, group_ids: torch.Tensor, **kwargs: float) -> torch.Tensor:
    """Advantages ``(B,)`` from the estimator registered as ``name`` in :data:`ADVANTAGES`.

    ``rewards`` (B,) is cast to the default float dtype if it is not floating point; ``group_ids`` (B,) must be an
    integer tensor (any ids, not necessarily contiguous). ``kwargs`` go to the estimator (``eps`` for ``grpo``,
    ``lam`` for ``w_reinforce``). Raises ``KeyError`` listing valid names for an unknown ``name`` and
    ``ValueError`` for bad shapes or non-finite rewards.
    """
    fn = ADVANTAGES.get(name)
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 1:
        shape = tuple(rewards.shape) if isinstance(rewards, torch.Tensor) else type(rewards).__name__
        raise ValueError(f"rewards must be a 1-D tensor (B,), got {shape}")
    if not isinstance(group_ids, torch.Tensor) or group_ids.shape != rewards.shape:
        shape = tuple(group_ids.shape) if isinstance(group_ids, torch.Tensor) else type(group_ids).__name__
        raise ValueError(f"group_ids must be a tensor of shape {tuple(rewards.shape)}, got {shape}")
    if group_ids.dtype.is_floating_point or group_ids.dtype == torch.bool:
        raise ValueError(f"group_ids must be an integer tensor, got dtype {group_ids.dtype}")
    if not rewards.dtype.is_floating_point:
        rewards = rewards.to(torch.get_default_dtype())
    if not bool(torch.isfinite(rewards).all()):
        rows = torch.nonzero(~torch.isfinite(rewards)).flatten().tolist()
        raise ValueError(f"rewards must be finite, got non-finite values at rows {rows[:10]} "
                         f"(rewards[{rows[0]}] = {float(rewards[rows[0]])}); check the reward function")
    return fn(rewards, group_ids, **kwargs)
