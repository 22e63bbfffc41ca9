"""Gradient-aware token advantage modulation: Gradient Compensation (GC) and Update Magnitude Stabilization (UMS).

Implements Eq. (8)-(14) and (24)-(29) of DynaMO, arXiv 2602.19208 (``../shared/docs/method-spec.md`` §4)::

    Ã_{i,t} = A_{i,t} · f_{i,t} · g_{i,t}                                  (Eq 14, factors detached)
    f = 1 + (μ_max − 1)(H_max − H)/(H_max − H_min)   if A > 0, else 1     (Eq 8-9, GC)
    ξ = I_clip · r · A                                                    (Eq 24)
    ΔĤ = −ξ · (π_t Λ_t − baseline),  Λ = log π + H                        (Eq 10, 27-29; η dropped)
    Ξ = |ΔĤ|,  x = Ξ / (max Ξ + 1e-8),  g = λ_min + (1 − λ_min)/(1 + e^{k(x − τ)})   (Eq 11-13, UMS)

Shapes: ``(B, T)`` token tensors; ``mask`` is ``(B, T)`` bool or 0/1 float (nonzero = valid response token). The
original advantage ``A`` is used for the sign test and for ξ. Every returned factor is detached. Minima and maxima are
taken over valid tokens of the tensors passed in (the micro-batch, as in the authors' code); a caller that normalises
over a larger scope (A6: ``mini`` / ``global``) computes :func:`entropy_minmax` and :func:`instability_stats` on each
part, reduces them (min / max / sum) and passes ``entropy_range`` / ``instability_max`` / ``instability_count``.

Non-finite inputs (beyond the paper): a valid token whose entropy, log-probability, old log-probability or Σπ²Λ is
NaN or ±inf is left out of ``H_min``/``H_max``, of the ``seq_mean_baseline`` row mean, of ``max Ξ`` and of the UMS
count, and gets the factors ``f = g = 1`` (``Ξ = 0``); :func:`modulate_advantages` reports how many in
``mod/nonfinite_tokens``. One bad token therefore cannot turn a whole batch's modulated advantages into NaN. For
finite inputs every result is bit for bit what it was without these guards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

ENTROPY_CHANGE_MODES = ("seq_mean_baseline", "exact", "pi2")
NONFINITE_TOKENS = "mod/nonfinite_tokens"
"""Metric key: valid tokens left out of the modulation because an input was NaN or ±inf (their factor is 1)."""
_RANGE_EPS = 1e-8
_MAX_EPS = 1e-8


@dataclass
class Modulation:
    """Output of :func:`modulate_advantages`; every tensor is ``(B, T)`` and detached."""

    advantages: torch.Tensor
    """Modulated advantages Ã = A·f·g (Eq 14)."""
    compensation: torch.Tensor
    """GC factor f (Eq 8-9); 1 where A ≤ 0, on padding, or when GC is off."""
    stabilization: torch.Tensor
    """UMS factor g (Eq 12-13); 1 on padding or when UMS is off."""
    instability: torch.Tensor
    """Instability indicator Ξ = |ΔĤ| (Eq 11); 0 on padding and when UMS is off."""
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    """Scalar (0-d) tensors, keys ``mod/...`` (see docs/metrics.md, "Modulation (core)")."""


def _valid(mask: torch.Tensor, like: torch.Tensor, name: str = "mask") -> torch.Tensor:
    if tuple(mask.shape) != tuple(like.shape):
        raise ValueError(f"{name} shape {tuple(mask.shape)} != token tensor shape {tuple(like.shape)}")
    return mask if mask.dtype == torch.bool else mask != 0


def _check_same(name: str, tensor: torch.Tensor, like: torch.Tensor) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(tensor).__name__}")
    if tuple(tensor.shape) != tuple(like.shape):
        raise ValueError(f"{name} shape {tuple(tensor.shape)} != expected {tuple(like.shape)}")
    if not tensor.dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating tensor, got dtype {tensor.dtype}")


def _as_tensor(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(device=like.device, dtype=like.dtype)
    return torch.tensor(float(value), device=like.device, dtype=like.dtype)


def entropy_minmax(entropy: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(H_min, H_max)`` over valid tokens, 0-d tensors (the normaliser of Eq. 9 of DynaMO, arXiv 2602.19208).

    Padding and non-finite entropies never set them. With no (finite) valid token, ``H_min = +inf`` and
    ``H_max = −inf`` (so a reduction over several micro-batches with ``min``/``max`` ignores the empty one, and a
    range < 1e-8 disables GC).
    """
    entropy = entropy.detach()
    valid = _valid(mask, entropy) & torch.isfinite(entropy)
    inf = torch.tensor(float("inf"), dtype=entropy.dtype, device=entropy.device)
    h_min = torch.where(valid, entropy, inf).amin() if entropy.numel() else inf
    h_max = torch.where(valid, entropy, -inf).amax() if entropy.numel() else -inf
    return h_min, h_max


def gradient_compensation(advantages: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor, *, mu_max: float,
                          entropy_range: tuple[float | torch.Tensor, float | torch.Tensor] | None = None
                          ) -> torch.Tensor:
    """GC factor ``f`` of Eq. (8)-(9) of DynaMO, arXiv 2602.19208: ``(B, T)``, detached.

    ``f = 1 + (μ_max − 1)(H_max − H)/(H_max − H_min)`` for valid tokens with ``A > 0``; 1 for ``A ≤ 0`` and padding.
    ``H_min/H_max`` come from ``entropy_range`` or else from the valid tokens here (:func:`entropy_minmax`). A token
    with a non-finite entropy gets ``f = 1``. When
    ``H_max − H_min < 1e-8`` (constant entropy, one token, no valid token) ``f = 1``. The normalised position is
    clamped to [0, 1], so ``f ∈ [1, μ_max]`` even if a caller's range does not contain every H.
    """
    _check_same("entropy", entropy, advantages)
    if not mu_max >= 1:
        raise ValueError(f"mu_max must be ≥ 1, got {mu_max!r}")
    entropy = entropy.detach()
    valid = _valid(mask, entropy)
    if entropy_range is None:
        h_min, h_max = entropy_minmax(entropy, valid)
    else:
        if len(entropy_range) != 2:
            raise ValueError(f"entropy_range must be (h_min, h_max), got {entropy_range!r}")
        h_min, h_max = _as_tensor(entropy_range[0], entropy), _as_tensor(entropy_range[1], entropy)
    span = h_max - h_min
    ok = span >= _RANGE_EPS  # False also for NaN and for the (+inf, −inf) empty range
    safe_span = torch.where(ok, span, torch.ones_like(span))
    safe_max = torch.where(ok, h_max, torch.zeros_like(h_max))
    position = ((safe_max - entropy) / safe_span).clamp(0.0, 1.0)
    boost = 1.0 + (mu_max - 1.0) * position
    apply = valid & (advantages.detach() > 0) & ok & torch.isfinite(entropy)
    return torch.where(apply, boost, torch.ones_like(boost))


def clip_indicator(ratio: torch.Tensor, advantages: torch.Tensor, *, eps_low: float, eps_high: float) -> torch.Tensor:
    """Clip indicator ``I_clip`` of Eq. (24) of DynaMO, arXiv 2602.19208: 1 where the unclipped branch carries gradient.

    ``I = 1[A>0]·1[r ≤ 1+ε_high] + 1[A<0]·1[r ≥ 1−ε_low]``; 0 for ``A = 0``. Same shape and dtype as ``ratio``.
    """
    _check_same("advantages", advantages, ratio)
    if not (eps_low >= 0 and eps_high >= 0):
        raise ValueError(f"eps_low and eps_high must be ≥ 0, got eps_low={eps_low!r}, eps_high={eps_high!r}")
    ratio, advantages = ratio.detach(), advantages.detach()
    keep = ((advantages > 0) & (ratio <= 1.0 + eps_high)) | ((advantages < 0) & (ratio >= 1.0 - eps_low))
    return keep.to(ratio.dtype)


def entropy_change(advantages: torch.Tensor, ratio: torch.Tensor, logprobs: torch.Tensor, entropy: torch.Tensor,
                   mask: torch.Tensor, *, eps_low: float, eps_high: float, mode: str,
                   sum_sq_probs_centered: torch.Tensor | None = None) -> torch.Tensor:
    """Estimated per-token entropy change ΔĤ/η of Eq. (10), (27)-(29) of DynaMO, arXiv 2602.19208: ``(B, T)``.

    Sign convention: the returned value estimates the change of the state entropy H(s_t) caused by one gradient-ascent
    step of size η on the token's surrogate, divided by η; **positive means the entropy rises**. With
    ``ξ = I_clip·r·A`` (Eq 24), ``π = exp(logprobs)`` and ``Λ = logprobs + H``::

        exact:              ΔĤ = −ξ · (π Λ − Σ_v π_v² Λ_v)       (first order, Eq 27; needs sum_sq_probs_centered)
        seq_mean_baseline:  ΔĤ = −ξ · (π Λ − mean_{valid t' of the row} π_t' Λ_t')   (authors' code, HEAD)
        pi2:                ΔĤ = −ξ · π² Λ                          (first release, "factorised" Eq 10, A7)

    Only |ΔĤ| (Eq 11) enters UMS, so the sign does not affect training. Padding gives 0, and so does a token with a
    non-finite input (ratio, log π, H, A or Σπ²Λ), which is also left out of its row's ``seq_mean_baseline``.
    Inputs are detached.
    """
    _check_same("ratio", ratio, advantages)
    _check_same("logprobs", logprobs, advantages)
    _check_same("entropy", entropy, advantages)
    if mode not in ENTROPY_CHANGE_MODES:
        raise ValueError(f"entropy_change_mode must be one of {', '.join(ENTROPY_CHANGE_MODES)}, got {mode!r}")
    advantages, logprobs, entropy = advantages.detach(), logprobs.detach(), entropy.detach()
    valid = (_valid(mask, advantages) & torch.isfinite(advantages) & torch.isfinite(ratio) & torch.isfinite(logprobs)
             & torch.isfinite(entropy))
    xi = clip_indicator(ratio, advantages, eps_low=eps_low, eps_high=eps_high) * ratio.detach() * advantages
    prob = logprobs.exp()
    centered = logprobs + entropy  # Λ
    if mode == "pi2":
        term = prob * prob * centered
    else:
        pi_lambda = prob * centered
        if mode == "exact":
            if sum_sq_probs_centered is None:
                raise ValueError("entropy_change_mode='exact' needs sum_sq_probs_centered "
                                 "(token_stats(..., with_centered=True).sum_sq_probs_centered)")
            _check_same("sum_sq_probs_centered", sum_sq_probs_centered, advantages)
            baseline = sum_sq_probs_centered.detach().to(pi_lambda.dtype)
            valid = valid & torch.isfinite(baseline)
        else:
            if pi_lambda.dim() != 2:
                raise ValueError(f"seq_mean_baseline needs (B, T) tensors, got shape {tuple(pi_lambda.shape)}")
            weights = valid.to(pi_lambda.dtype)
            count = weights.sum(dim=1, keepdim=True).clamp(min=1.0)
            baseline = (torch.where(valid, pi_lambda, torch.zeros_like(pi_lambda)).sum(dim=1, keepdim=True) / count)
        term = pi_lambda - baseline
    change = -xi * term
    return torch.where(valid, change, torch.zeros_like(change))


def instability_stats(instability: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(max Ξ, number of valid tokens with Ξ > 0)`` as 0-d tensors (normaliser of Eq. 12, A8 global max).

    Reduce with ``max`` / ``sum`` across micro-batches for a wider scope (A6). Max of no valid token is 0; a
    non-finite Ξ is left out of both.
    """
    inst = instability.detach()
    valid = _valid(mask, inst) & torch.isfinite(inst)
    masked = torch.where(valid, inst, torch.zeros_like(inst))
    inst_max = masked.amax() if inst.numel() else torch.zeros((), dtype=inst.dtype, device=inst.device)
    count = (valid & (inst > 0)).sum()
    return inst_max, count


def max_instability(instability: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``max Ξ`` over valid tokens (0-d tensor; 0 when empty). See :func:`instability_stats`."""
    return instability_stats(instability, mask)[0]


def stabilization(instability: torch.Tensor, mask: torch.Tensor, *, lambda_min: float, k: float, tau: float,
                  instability_max: float | torch.Tensor | None = None, min_tokens: int = 2,
                  instability_count: int | torch.Tensor | None = None) -> torch.Tensor:
    """UMS factor ``g`` of Eq. (11)-(13) of DynaMO, arXiv 2602.19208: ``(B, T)``, detached, in ``[λ_min, 1]``.

    ``x = Ξ / (max Ξ + 1e-8)`` with the **global** max over valid tokens (A8; or ``instability_max`` from a wider
    scope), clamped to [0, 1]; ``g(x) = λ_min + (1 − λ_min)/(1 + e^{k(x − τ)})``. Guard (beyond the paper): ``g = 1``
    everywhere when fewer than ``min_tokens`` valid tokens have ``Ξ > 0`` (counted here, or ``instability_count`` from
    the same scope as ``instability_max``), so a lone token is not damped to λ_min. Padding gets 1, and so does a
    token whose Ξ (or the normalised x, e.g. under a NaN ``instability_max``) is not finite.
    """
    if not 0 < lambda_min <= 1:
        raise ValueError(f"lambda_min must be in (0, 1], got {lambda_min!r}")
    if not k > 0:
        raise ValueError(f"k must be > 0, got {k!r}")
    if not 0 <= tau <= 1:
        raise ValueError(f"tau must be in [0, 1], got {tau!r}")
    if not (isinstance(min_tokens, int) and min_tokens >= 0):
        raise ValueError(f"ums_min_tokens must be an int ≥ 0 (0 = no guard), got {min_tokens!r}")
    inst = instability.detach()
    if not inst.dtype.is_floating_point:
        raise ValueError(f"instability must be a floating tensor, got dtype {inst.dtype}")
    valid = _valid(mask, inst)
    local_max, local_count = instability_stats(inst, valid)
    inst_max = local_max if instability_max is None else _as_tensor(instability_max, inst)
    count = local_count if instability_count is None else torch.as_tensor(instability_count, device=inst.device)
    x = (inst / (inst_max + _MAX_EPS)).clamp(0.0, 1.0)
    g = lambda_min + (1.0 - lambda_min) * torch.sigmoid(-k * (x - tau))
    apply = valid & (count >= min_tokens) & torch.isfinite(inst) & torch.isfinite(x)
    return torch.where(apply, g, torch.ones_like(g))


def _masked_mean(values: torch.Tensor, valid: torch.Tensor, empty: float) -> torch.Tensor:
    count = valid.sum()
    total = torch.where(valid, values, torch.zeros_like(values)).sum()
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, empty))


def _masked_extreme(values: torch.Tensor, valid: torch.Tensor, empty: float, largest: bool) -> torch.Tensor:
    if values.numel() == 0:
        return torch.tensor(empty, dtype=values.dtype, device=values.device)
    fill = torch.full_like(values, float("-inf") if largest else float("inf"))
    out = torch.where(valid, values, fill)
    out = out.amax() if largest else out.amin()
    return torch.where(valid.any(), out, torch.full_like(out, empty))


def modulate_advantages(advantages: torch.Tensor, mask: torch.Tensor, *, logprobs: torch.Tensor,
                        old_logprobs: torch.Tensor, entropy: torch.Tensor, eps_low: float, eps_high: float,
                        gradient_compensation: bool, stabilization: bool, mu_max: float, lambda_min: float, k: float,
                        tau: float, entropy_change_mode: str, ums_min_tokens: int,
                        sum_sq_probs_centered: torch.Tensor | None = None,
                        entropy_range: tuple[float | torch.Tensor, float | torch.Tensor] | None = None,
                        instability_max: float | torch.Tensor | None = None,
                        instability_count: int | torch.Tensor | None = None) -> Modulation:
    """Modulated advantages ``Ã = A · f · g`` of Eq. (14) of DynaMO, arXiv 2602.19208 (GC Eq 8-9, UMS Eq 10-13).

    Args:
        advantages: ``(B, T)`` token advantages, or ``(B,)`` sequence advantages broadcast over T.
        mask: ``(B, T)`` valid response tokens.
        logprobs, old_logprobs, entropy: ``(B, T)`` current log π(o_t), behaviour log π_old(o_t), entropy H_t of the
            current policy (all detached here). The ratio is ``exp(clamp(logprobs − old_logprobs, ±20))``.
        eps_low, eps_high: clip ranges of the surrogate (for I_clip, Eq 24).
        gradient_compensation, stabilization: switch GC / UMS on (off = factor 1).
        mu_max, lambda_min, k, tau: GC maximum factor and UMS sigmoid parameters (Eq 9, 13).
        entropy_change_mode: ``seq_mean_baseline`` | ``exact`` | ``pi2`` (see :func:`entropy_change`, A7).
        ums_min_tokens: the UMS guard of :func:`stabilization`.
        sum_sq_probs_centered: ``(B, T)`` Σπ²Λ, required by ``exact``.
        entropy_range, instability_max, instability_count: normalisers from a wider scope (A6); default local.

    Returns:
        :class:`Modulation`. ``A`` keeps its own autograd history (normally none); f and g are detached. The original
        A is used for the sign test and for ξ, so ``sign(Ã) = sign(A)``.
    """
    if not isinstance(advantages, torch.Tensor) or not advantages.dtype.is_floating_point:
        raise ValueError("advantages must be a floating tensor of shape (B, T) or (B,)")
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        raise ValueError(f"mask must be a (B, T) tensor, got {getattr(mask, 'shape', type(mask).__name__)}")
    if advantages.dim() == 1:
        if advantages.shape[0] != mask.shape[0]:
            raise ValueError(f"advantages shape {tuple(advantages.shape)} does not match mask rows {mask.shape[0]}")
        advantages = advantages.unsqueeze(1).expand(mask.shape)
    if tuple(advantages.shape) != tuple(mask.shape):
        raise ValueError(f"advantages shape {tuple(advantages.shape)} != mask shape {tuple(mask.shape)}")
    for name, tensor in (("logprobs", logprobs), ("old_logprobs", old_logprobs), ("entropy", entropy)):
        _check_same(name, tensor, advantages)
    if entropy_change_mode not in ENTROPY_CHANGE_MODES:
        raise ValueError(f"entropy_change_mode must be one of {', '.join(ENTROPY_CHANGE_MODES)}, "
                         f"got {entropy_change_mode!r}")
    valid = _valid(mask, advantages)
    adv = advantages.detach()
    finite = torch.isfinite(entropy) & torch.isfinite(logprobs) & torch.isfinite(old_logprobs)
    if stabilization and entropy_change_mode == "exact" and sum_sq_probs_centered is not None:
        _check_same("sum_sq_probs_centered", sum_sq_probs_centered, advantages)
        finite &= torch.isfinite(sum_sq_probs_centered)
    nonfinite = (valid & ~finite).sum()
    used = valid & finite  # the tokens that enter the normalisers; the others keep factor 1
    ones = torch.ones_like(adv)
    compensation = ones
    if gradient_compensation:
        compensation = _gc(adv, entropy.detach().to(adv.dtype), used, mu_max=mu_max, entropy_range=entropy_range)
    factor_stab = ones
    instability = torch.zeros_like(adv)
    if stabilization:
        log_ratio = (logprobs.detach() - old_logprobs.detach()).to(adv.dtype).clamp(-20.0, 20.0)
        centered = None if sum_sq_probs_centered is None else sum_sq_probs_centered.detach().to(adv.dtype)
        change = entropy_change(adv, log_ratio.exp(), logprobs.detach().to(adv.dtype),
                                entropy.detach().to(adv.dtype), used, eps_low=eps_low, eps_high=eps_high,
                                mode=entropy_change_mode, sum_sq_probs_centered=centered)
        instability = change.abs()
        factor_stab = _ums(instability, used, lambda_min=lambda_min, k=k, tau=tau, instability_max=instability_max,
                           min_tokens=ums_min_tokens, instability_count=instability_count)
    elif not 0 < lambda_min <= 1:
        raise ValueError(f"lambda_min must be in (0, 1], got {lambda_min!r}")
    factor = (compensation * factor_stab).detach()
    modulated = advantages * factor
    inst_max, _ = instability_stats(instability, valid)
    metrics = {
        "mod/compensation_mean": _masked_mean(compensation, valid, 1.0),
        "mod/compensation_max": _masked_extreme(compensation, valid, 1.0, largest=True),
        "mod/frac_boosted": _masked_mean((compensation > 1.0 + 1e-6).to(adv.dtype), valid, 0.0),
        "mod/stabilization_mean": _masked_mean(factor_stab, valid, 1.0),
        "mod/stabilization_min": _masked_extreme(factor_stab, valid, 1.0, largest=False),
        "mod/frac_damped": _masked_mean((factor_stab < 0.99).to(adv.dtype), valid, 0.0),
        "mod/instability_max": inst_max,
        "mod/factor_mean": _masked_mean(factor, valid, 1.0),
        NONFINITE_TOKENS: nonfinite.to(adv.dtype),
    }
    return Modulation(advantages=modulated, compensation=compensation.detach(), stabilization=factor_stab.detach(),
                      instability=instability.detach(), metrics={k_: v.detach() for k_, v in metrics.items()})


_gc = gradient_compensation  # the keyword arguments of modulate_advantages shadow these names
_ums = stabilization
