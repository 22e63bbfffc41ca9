"""Token modulation inside TRL's loss: statistics from TRL's fused LM head, Ã written as (B, T) advantages.

TRL ≥ 1.15 computes per-token log-probabilities and entropies with a fused, chunked LM head
(``trl.trainer.utils.add_fused_lm_head``); its kernel can also return ``log_sum_sq_probs`` = log Σ_a π(a)², which GRPO
does not request. :func:`install_stats_capture` re-wraps the policy's forward with that output requested (re-wrapping
composes: the outer wrapper serves ``fused_lm_head=True`` calls, the rest fall through) plus a thin shim that hands
``log_sum_sq_probs`` to an armed :class:`StatsCapture`.

:func:`modulated_advantages` then applies ``core.modulation.modulate_advantages`` (Eq 8-14 of DynaMO, arXiv
2602.19208) to the current-policy statistics, detached. The trainer writes the result into the (copied) inputs of
``_compute_loss`` *after* TRL computed the log-probs and *before* TRL reads ``inputs["advantages"]``, so every TRL
loss type, clipping rule, mask and normaliser applies unchanged to Ã.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

import torch

from dynamo_rl.method_config import ModulationConfig


class StatsCapture:
    """Collects ``log_sum_sq_probs`` (B, L−1) of every fused forward while armed (``active`` is a list)."""

    def __init__(self) -> None:
        self.active: list[torch.Tensor] | None = None


def install_stats_capture(model: Any, *, temperature: float, cast_lm_head_to_fp32: bool) -> StatsCapture:
    """Request ``log_sum_sq_probs`` from TRL's fused LM head on ``model`` and return the capture that receives it."""
    from trl.kernels.chunked_logprob import OPTIONAL_OUTPUTS
    from trl.trainer.utils import add_fused_lm_head

    if "log_sum_sq_probs" not in OPTIONAL_OUTPUTS:
        raise ImportError("this TRL version's fused LM head has no 'log_sum_sq_probs' output (needs trl>=1.15)")
    add_fused_lm_head(model, temperature=temperature, cast_lm_head_to_fp32=cast_lm_head_to_fp32,
                      outputs=("log_probs", "entropy", "log_sum_sq_probs"))
    fused_forward = model.forward
    capture = StatsCapture()

    @functools.wraps(type(model).forward)  # keep the signature: generate() validates kwargs against it
    def _capturing_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = fused_forward(*args, **kwargs)
        if capture.active is not None and kwargs.get("fused_lm_head", False):
            capture.active.append(out.log_sum_sq_probs)
        return out

    model.forward = types.MethodType(_capturing_forward, model)
    return capture


def modulated_advantages(advantages: torch.Tensor, mask: torch.Tensor, *, logprobs: torch.Tensor,
                         old_logprobs: torch.Tensor, entropy: torch.Tensor, eps_low: float, eps_high: float,
                         config: ModulationConfig, reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None
                         ) -> Any:
    """Ã = A·β^comp·β^stab for one micro-batch (Eq 14), factors detached; returns ``core.modulation.Modulation``.

    ``advantages`` (B,) or (B, T); ``mask``, ``logprobs``, ``old_logprobs``, ``entropy`` (B, T). ``reduce(tensor,
    op)`` with op ∈ {"max", "sum"} (e.g. an all-reduce across processes) widens the scope of H_min/H_max, max Ξ and the
    UMS token count beyond this micro-batch (``norm_scope`` mini/global); ``None`` keeps them local (``micro``).
    """
    from dynamo_rl.core.modulation import entropy_minmax, instability_stats, modulate_advantages

    kwargs = dict(logprobs=logprobs.detach(), old_logprobs=old_logprobs.detach(), entropy=entropy.detach(),
                  eps_low=eps_low, eps_high=eps_high, **config.core_kwargs())
    if reduce is None:
        return modulate_advantages(advantages, mask, **kwargs)
    # Ξ does not depend on the entropy range or the normaliser, so a local pass gives it; reduce, then apply.
    local = modulate_advantages(advantages, mask, **kwargs)
    h_min, h_max = entropy_minmax(entropy.detach(), mask)
    inst_max, inst_count = instability_stats(local.instability, mask)
    maxima = reduce(torch.stack([-h_min.float(), h_max.float(), inst_max.float()]), "max")
    count = reduce(inst_count.reshape(1).float(), "sum")[0]
    return modulate_advantages(advantages, mask, entropy_range=(-maxima[0], maxima[1]), instability_max=maxima[2],
                               instability_count=count, **kwargs)
