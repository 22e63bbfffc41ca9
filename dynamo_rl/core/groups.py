"""Ragged group statistics over ``group_ids``.

Rows of a rollout batch carry ``group_ids: LongTensor (B,)``; a group is the set of responses sampled for one prompt,
and groups have different sizes (n_i under Dynamic Rollout Allocation). Every group statistic in the library goes
through these functions: nothing reshapes by a fixed group size.

Shapes: ``B`` rows. ``group_ids`` may be any integers (not necessarily contiguous or sorted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch


def _check(values: torch.Tensor, group_ids: torch.Tensor) -> None:
    if values.dim() != 1:
        raise ValueError(f"values must be 1-D (B,), got shape {tuple(values.shape)}")
    if group_ids.shape != values.shape:
        raise ValueError(f"group_ids shape {tuple(group_ids.shape)} != values shape {tuple(values.shape)}")
    if group_ids.dtype.is_floating_point or group_ids.dtype == torch.bool:
        raise ValueError(f"group_ids must be an integer tensor, got dtype {group_ids.dtype}")


def compact_group_ids(group_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Map arbitrary integer ids to ``0..G-1`` (order of first sorted id). Returns ``(index (B,), G)``."""
    uniq, inverse = torch.unique(group_ids, return_inverse=True)
    return inverse, int(uniq.numel())


def group_count(group_ids: torch.Tensor) -> torch.Tensor:
    """Size n_i of each row's group, broadcast back to rows: (B,) float (dtype float32)."""
    inverse, num_groups = compact_group_ids(group_ids)
    counts = torch.zeros(num_groups, dtype=torch.float32, device=group_ids.device)
    counts.index_add_(0, inverse, torch.ones_like(inverse, dtype=torch.float32))
    return counts[inverse]


def group_mean(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` within each row's group, broadcast back to rows: (B,)."""
    _check(values, group_ids)
    inverse, num_groups = compact_group_ids(group_ids)
    sums = torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add_(0, inverse, values)
    counts = torch.zeros(num_groups, dtype=values.dtype, device=values.device)
    counts.index_add_(0, inverse, torch.ones_like(values))
    return (sums / counts)[inverse]


def group_std(values: torch.Tensor, group_ids: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Standard deviation within each row's group, broadcast back to rows: (B,).

    ``unbiased=True`` uses Bessel's correction (n−1), as ``torch.std`` and verl do. A singleton group has no unbiased
    std; it gets 0 here (callers decide what a singleton group means, see ``core.advantages``).
    """
    _check(values, group_ids)
    inverse, num_groups = compact_group_ids(group_ids)
    ones = torch.ones_like(values)
    counts = torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add_(0, inverse, ones)
    sums = torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add_(0, inverse, values)
    means = sums / counts
    centred = values - means[inverse]
    sq = torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add_(0, inverse, centred * centred)
    dof = counts - 1.0 if unbiased else counts
    var = torch.where(dof > 0, sq / dof.clamp(min=1.0), torch.zeros_like(sq))
    return var.sqrt()[inverse]


T = TypeVar("T")


def repeat_per_prompt(values: Sequence[T], num_rollouts: Sequence[int]) -> list[T]:
    """``[v_0]*n_0 + [v_1]*n_1 + ...``: the ONE way per-prompt fields become per-rollout fields, in every engine
    (Sec. 4.2 of DynaMO, arXiv 2602.19208: prompt i gets n_i rollouts; repeating every field by the same n_i avoids
    the official trainer's ground-truth mis-pairing)."""
    if len(values) != len(num_rollouts):
        raise ValueError(f"num_rollouts has {len(num_rollouts)} entries for {len(values)} prompts")
    out: list[T] = []
    for value, n in zip(values, num_rollouts):
        if int(n) < 0:
            raise ValueError(f"num_rollouts must be ≥ 0, got {int(n)}")
        out.extend([value] * int(n))
    return out
