"""TRL's GRPO advantage rule (``GRPOTrainer._generate_and_score_completions``, TRL 1.16) over ragged prompt groups.

TRL reshapes the gathered rewards with ``view(-1, num_generations)``; under Dynamic Rollout Allocation groups have
different sizes n_i, so the same rule is recomputed here with segment (group-id) statistics. It keeps TRL's
semantics exactly: NaN rewards (every reward function returned None) are left out of the group baseline and get
advantage 0; ``scale_rewards`` ∈ {group, batch, none}; ``multi_objective_aggregation`` ∈ {sum_then_normalize,
normalize_then_sum}; ε (TRL: 1e-4; the adapter passes ``loss.grpo_eps``); Bessel-corrected std, NaN for groups with fewer than two scored rows (→ advantage 0).
With equal group sizes the result equals TRL's (tested).

Shapes: ``rewards_per_func`` (B, F), ``reward_weights`` (F,), ``group_ids`` (B,) int in [0, G).
"""

from __future__ import annotations

import torch

TRL_STD_EPS = 1e-4


def segment_nanmean(values: torch.Tensor, group_ids: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Per-group mean ignoring NaN: (G,); NaN for a group without any finite value."""
    valid = ~torch.isnan(values)
    sums = values.new_zeros(num_groups).index_add_(0, group_ids, torch.where(valid, values, torch.zeros_like(values)))
    counts = values.new_zeros(num_groups).index_add_(0, group_ids, valid.to(values.dtype))
    return sums / counts


def segment_nanstd(values: torch.Tensor, group_ids: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Per-group Bessel-corrected std ignoring NaN (as ``trl.trainer.utils.nanstd``): (G,); NaN if < 2 values."""
    valid = ~torch.isnan(values)
    mean = segment_nanmean(values, group_ids, num_groups)
    dev = torch.where(valid, (values - mean[group_ids]) ** 2, torch.zeros_like(values))
    sq = values.new_zeros(num_groups).index_add_(0, group_ids, dev)
    counts = values.new_zeros(num_groups).index_add_(0, group_ids, valid.to(values.dtype))
    var = torch.where(counts > 1, sq / (counts - 1).clamp(min=1), torch.full_like(sq, float("nan")))
    return var.sqrt()


def _nanstd_all(values: torch.Tensor) -> torch.Tensor:
    valid = values[~torch.isnan(values)]
    if valid.numel() < 2:
        return values.new_tensor(float("nan"))
    return valid.std(unbiased=True)


def trl_group_advantages(rewards_per_func: torch.Tensor, reward_weights: torch.Tensor, group_ids: torch.Tensor, *,
                         scale_rewards: str = "group", multi_objective_aggregation: str = "sum_then_normalize",
                         eps: float = TRL_STD_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """TRL's advantages with ragged groups. Returns ``(advantages (B,), is_std_zero (B,) bool)`` for logging.
    ``eps`` is the std-normalisation ε (TRL: 1e-4; the adapter passes ``loss.grpo_eps`` so all engines agree)."""
    if rewards_per_func.dim() != 2:
        raise ValueError(f"rewards_per_func must be (B, F), got shape {tuple(rewards_per_func.shape)}")
    if group_ids.shape != rewards_per_func.shape[:1]:
        raise ValueError(f"group_ids shape {tuple(group_ids.shape)} != (B,) = ({rewards_per_func.shape[0]},)")
    group_ids = group_ids.to(device=rewards_per_func.device, dtype=torch.long)
    num_groups = int(group_ids.max().item()) + 1 if group_ids.numel() else 0
    weights = reward_weights.to(rewards_per_func.device, rewards_per_func.dtype).unsqueeze(0)
    unscorable = torch.isnan(rewards_per_func).all(dim=1)

    if multi_objective_aggregation == "sum_then_normalize":
        rewards = (rewards_per_func * weights).nansum(dim=1)
        rewards[unscorable] = torch.nan
        mean = segment_nanmean(rewards, group_ids, num_groups)[group_ids]
        if scale_rewards in ("group", "none"):
            std = segment_nanstd(rewards, group_ids, num_groups)[group_ids]
        elif scale_rewards == "batch":
            std = (_nanstd_all(rewards) if rewards.numel() > 1 else rewards.new_tensor(0.0)).expand_as(rewards)
        else:
            raise ValueError(f"invalid scale_rewards={scale_rewards!r}: expected group, batch or none")
        advantages = rewards - mean
        if scale_rewards != "none":
            advantages = advantages / (std + eps)
    elif multi_objective_aggregation == "normalize_then_sum":
        columns = []
        for k in range(rewards_per_func.shape[1]):
            col = rewards_per_func[:, k]
            mean_k = segment_nanmean(col, group_ids, num_groups)[group_ids]
            std_k = segment_nanstd(col, group_ids, num_groups)[group_ids]
            columns.append((col - mean_k) / (std_k + eps))
        rewards = (torch.stack(columns, dim=1) * weights).nansum(dim=1)
        rewards[unscorable] = torch.nan
        std = (_nanstd_all(rewards) if rewards.numel() > 1 else rewards.new_tensor(0.0)).expand_as(rewards)
        advantages = (rewards - torch.nanmean(rewards)) / (std + eps)
    else:
        raise ValueError(f"invalid multi_objective_aggregation={multi_objective_aggregation!r}: expected "
                         "sum_then_normalize or normalize_then_sum")
    is_std_zero = torch.isclose(std, torch.zeros_like(std))
    return torch.nan_to_num(advantages, nan=0.0), is_std_zero


def contiguous_group_ids(prompt_ids: list[str]) -> tuple[torch.Tensor, list[str], list[int]]:
    """Group consecutive equal prompt ids: ``(group_ids (B,), unique ids in order, group sizes)``.

    Raises ``ValueError`` if a prompt id appears in two separate runs (its rows must be contiguous).
    """
    ids: list[int] = []
    unique: list[str] = []
    sizes: list[int] = []
    seen: set[str] = set()
    for row, pid in enumerate(prompt_ids):
        if unique and unique[-1] == pid:
            sizes[-1] += 1
        else:
            if pid in seen:
                raise ValueError(f"prompt id {pid!r} appears in two separate runs of the generation batch (row {row}); "
                                 "prompt ids must be unique per dataset row")
            seen.add(pid)
            unique.append(pid)
            sizes.append(1)
        ids.append(len(unique) - 1)
    return torch.tensor(ids, dtype=torch.long), unique, sizes
