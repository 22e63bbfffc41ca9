"""Loss aggregation: reduce a per-token loss matrix to a scalar, kept apart from the per-token loss itself.

Implements the reductions used around Eq. (3) / Eq. (15) of DynaMO (arXiv 2602.19208), following verl ``agg_loss``:

* ``token-mean``: Σ_{i,t} m·ℓ / Σ_{i,t} m (DAPO; DynaMO's default).
* ``seq-mean-token-mean``: mean over sequences of Σ_t m·ℓ / |o_i| (original GRPO).
* ``seq-mean-token-sum``: mean over sequences of Σ_t m·ℓ.
* ``seq-mean-token-sum-norm``: Σ_{i,t} m·ℓ / (L_max · #non-empty sequences) (Dr. GRPO, as verl and TRL), L_max = T.

``normalizer`` replaces the mode's denominator (Σm, the number of sequences, or L_max × sequences). Under gradient accumulation
pass the count over the whole mini-batch (e.g. its global token count for ``token-mean``) so that summing the
micro-batch losses gives exactly the mini-batch loss. Sequence counts include only rows with at least one valid
token. Every denominator is clamped to ≥ 1, so an all-masked batch gives 0, never NaN.

Shapes: ``loss`` (B, T) float, ``mask`` (B, T) bool or 0/1 → scalar (0-dim) tensor, differentiable in ``loss``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dynamo_rl.core.registry import Registry

AggregateFn = Callable[[torch.Tensor, torch.Tensor, "float | torch.Tensor | None"], torch.Tensor]

AGGREGATIONS: Registry[AggregateFn] = Registry("loss aggregation mode")


def _denominator(default: torch.Tensor, normalizer: float | torch.Tensor | None) -> torch.Tensor:
    value = default if normalizer is None else torch.as_tensor(normalizer, dtype=default.dtype, device=default.device)
    return value.clamp(min=1.0)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over positions where ``mask`` is true; 0 when nothing is valid. Any equal shapes."""
    mask = mask.bool()
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().to(total.dtype).clamp(min=1.0)


def _masked(loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # torch.where, not multiplication, so NaN/inf in padded positions cannot leak into the sum or its gradient.
    return torch.where(mask, loss, torch.zeros_like(loss))


@AGGREGATIONS.register("token-mean")
def token_mean(loss: torch.Tensor, mask: torch.Tensor, normalizer: float | torch.Tensor | None = None) -> torch.Tensor:
    """Σ_{i,t} m·ℓ / (normalizer or Σ m)."""
    return _masked(loss, mask).sum() / _denominator(mask.sum().to(loss.dtype), normalizer)


@AGGREGATIONS.register("seq-mean-token-mean")
def seq_mean_token_mean(loss: torch.Tensor, mask: torch.Tensor,
                        normalizer: float | torch.Tensor | None = None) -> torch.Tensor:
    """Σ_i (Σ_t m·ℓ / |o_i|) / (normalizer or #non-empty sequences)."""
    lengths = mask.sum(dim=-1).to(loss.dtype)
    per_seq = _masked(loss, mask).sum(dim=-1) / lengths.clamp(min=1.0)
    return per_seq.sum() / _denominator((lengths > 0).sum().to(loss.dtype), normalizer)


@AGGREGATIONS.register("seq-mean-token-sum")
def seq_mean_token_sum(loss: torch.Tensor, mask: torch.Tensor,
                       normalizer: float | torch.Tensor | None = None) -> torch.Tensor:
    """Σ_{i,t} m·ℓ / (normalizer or #non-empty sequences)."""
    lengths = mask.sum(dim=-1)
    return _masked(loss, mask).sum() / _denominator((lengths > 0).sum().to(loss.dtype), normalizer)


@AGGREGATIONS.register("seq-mean-token-sum-norm")
def seq_mean_token_sum_norm(loss: torch.Tensor, mask: torch.Tensor,
                            normalizer: float | torch.Tensor | None = None) -> torch.Tensor:
    """Dr. GRPO: the mean over sequences of Σ_t m·ℓ / L_max = Σ_{i,t} m·ℓ / (L_max · #non-empty sequences), with
    L_max the padded length T (verl 0.9.1 ``agg_loss`` and TRL ``loss_type="dr_grpo"``).

    ``normalizer`` replaces the whole denominator: pass L_max × (#sequences of the mini-batch) with L_max the
    maximum response length, to keep L_max constant through training as Dr. GRPO does.
    """
    lengths = mask.sum(dim=-1)
    default = float(loss.shape[-1]) * (lengths > 0).sum().to(loss.dtype)
    return _masked(loss, mask).sum() / _denominator(default, normalizer)


def aggregate(loss: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean",
              normalizer: float | torch.Tensor | None = None) -> torch.Tensor:
    """Reduce the per-token loss ``loss`` (B, T) under ``mask`` (B, T) with ``mode`` (see module docstring).

    Aggregation of the surrogate of Eq. (3) / Eq. (15) of DynaMO (arXiv 2602.19208). Raises ``KeyError`` listing
    the valid modes for an unknown ``mode`` and ``ValueError`` for mismatched shapes.
    """
    fn = AGGREGATIONS.get(mode)
    if loss.dim() != 2 or mask.shape != loss.shape:
        raise ValueError(f"loss and mask must both be (B, T); got loss {tuple(loss.shape)}, mask {tuple(mask.shape)}")
    if normalizer is not None and not isinstance(normalizer, torch.Tensor) and not normalizer > 0:
        raise ValueError(f"normalizer must be > 0 or None, got {normalizer!r}")
    return fn(loss, mask.bool(), normalizer)
